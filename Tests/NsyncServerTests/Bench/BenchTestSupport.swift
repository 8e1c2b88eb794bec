import Foundation
import XCTest

/// Where the benchmark tests find the nsyncd binary the daemons run: next to
/// the test bundle (.build/<triple>/debug/), where `swift build --build-tests` puts it.
enum BenchTestSupport {
    static func nsyncdExecutable(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let bundle = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0])
        let path = bundle.deletingLastPathComponent().appendingPathComponent("nsyncd").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            XCTFail("no nsyncd executable at \(path): build it with `swift build --build-tests`", file: file, line: line)
            throw XCTSkip("nsyncd not built")
        }
        return path
    }

    /// A scratch directory under the system temporary directory; the caller removes it.
    static func scratchDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.path + "/nsync-bench-test-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
