import XCTest
@testable import NsyncServer

/// Helpers shared by the Loop tests: bounded waits on a loop, descriptor
/// counting for leak checks, a seeded random source, temporary directories.
enum LoopTestSupport {
    /// Open descriptors of this process (/proc/self/fd, minus the one used to list it).
    static func openDescriptorCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count).map { $0 - 1 } ?? -1
    }

    /// A fresh directory under the system temp dir; the caller removes it.
    static func makeTemporaryDirectory(_ name: String = #function) throws -> String {
        let clean = name.filter { $0.isLetter || $0.isNumber }.prefix(24)
        let path = NSTemporaryDirectory() + "nsync-loop-\(clean)-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// SplitMix64: a tiny seeded generator so failures replay from the printed seed.
    struct SeededRandom: RandomNumberGenerator {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// A seed from the environment (LOOP_TEST_SEED) or a fresh one, printed.
    static func seed(_ test: String = #function) -> UInt64 {
        let seed = ProcessInfo.processInfo.environment["LOOP_TEST_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0 ... .max)
        print("\(test): seed \(seed) (replay with LOOP_TEST_SEED=\(seed))")
        return seed
    }
}

extension EventLoop {
    /// Runs the loop until `condition` holds; fails the test after `timeout` ms.
    func waitFor(_ what: String, timeout: UInt64 = 5_000, file: StaticString = #filePath, line: UInt = #line,
                 until condition: () -> Bool) {
        if !run(until: condition, timeout: timeout) {
            XCTFail("timed out after \(timeout) ms waiting for \(what)", file: file, line: line)
        }
    }
}

/// A weak reference, to check that handles are released.
final class WeakBox<T: AnyObject> {
    weak var value: T?
    init(_ value: T) { self.value = value }
}
