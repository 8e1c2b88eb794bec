import Foundation
import XCTest
@testable import NsyncServer

final class SyncBenchmarkTests: XCTestCase {
    /// Every workload and both references, each a few files or MiB: the
    /// three daemons converge to verified identical trees.
    func testTinyRunConvergesAndReportsEveryFigure() throws {
        let executable = try BenchTestSupport.nsyncdExecutable()
        let parent = try BenchTestSupport.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        var options = SyncBenchmark.Options()
        options.directory = parent
        options.largeBytes = 3 << 20
        options.smallFiles = 40
        options.smallFolders = 4
        options.smallFileBytes = 4_096
        options.edits = 3
        options.tlsBytes = 1 << 20
        let result = try SyncBenchmark.run(options, executable: executable, certificateScript: TestCertificates.scriptPath,
                                           progress: { print("SyncBenchmark: \($0)") })
        print("SyncBenchmark (debug build, tiny): \(try BenchSupport.json(result))")
        XCTAssertGreaterThan(try XCTUnwrap(result.largeMbPerS), 0)
        // 3 MiB is under the relay size: node 1 sends it to each receiver.
        XCTAssertEqual(try XCTUnwrap(result.largeSentByOrigin), 2, accuracy: 0.05)
        XCTAssertGreaterThan(try XCTUnwrap(result.largeEditS), 0)
        // 4 KiB overwritten in the 3 MiB file: a 128 KiB block to each receiver, not the file.
        let editBytes = try XCTUnwrap(result.largeEditBytesReceived)
        XCTAssertGreaterThanOrEqual(editBytes, 2 * 4_096)
        XCTAssertLessThan(editBytes, 1 << 20, "the edit in place moved \(editBytes) bytes")
        XCTAssertGreaterThan(try XCTUnwrap(result.smallFilesS), 0)
        XCTAssertLessThanOrEqual(try XCTUnwrap(result.smallWriteS), try XCTUnwrap(result.smallFilesS))
        XCTAssertGreaterThan(try XCTUnwrap(result.renameS), 0)
        XCTAssertEqual(result.renameBytesReceived, 0, "the other nodes moved their own copies of the renamed folder")
        let p50 = try XCTUnwrap(result.editP50Ms)
        XCTAssertGreaterThan(p50, 0)
        XCTAssertLessThanOrEqual(p50, try XCTUnwrap(result.editP99Ms))
        XCTAssertEqual(Set(result.peakRssMibPerNode.keys), ["n1", "n2", "n3"])
        XCTAssertGreaterThan(result.peakRssMib, 1)
        let largePeak = try XCTUnwrap(result.largePeakRssMib)
        XCTAssertGreaterThan(largePeak, 1)
        XCTAssertLessThanOrEqual(largePeak, result.peakRssMib, "a peak part-way is at most the whole run's")
        XCTAssertGreaterThan(try XCTUnwrap(result.tlsMbPerS), 0)
        XCTAssertGreaterThan(try XCTUnwrap(result.diskFloorMbPerS), 0)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: parent), [], "the scratch directory is removed")

        let json = try BenchSupport.json(result)
        for key in ["large_mb_per_s", "large_sent_by_origin", "large_edit_s", "large_edit_bytes_received", "small_files_s", "rename_s", "rename_bytes_received", "edit_p50_ms", "edit_p99_ms", "peak_rss_mib", "large_peak_rss_mib", "tls_mb_per_s",
                    "disk_floor_mb_per_s"] {
            XCTAssertTrue(json.contains("\"\(key)\""), "\(key) in \(json)")
        }
    }

    func testSkippedWorkloadsAreLeftOutOfTheFigures() throws {
        let executable = try BenchTestSupport.nsyncdExecutable()
        let parent = try BenchTestSupport.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        var options = SyncBenchmark.Options()
        options.directory = parent
        options.largeBytes = 0
        options.smallFiles = 0
        options.edits = 1
        options.tlsBytes = 0
        let result = try SyncBenchmark.run(options, executable: executable, certificateScript: TestCertificates.scriptPath)
        XCTAssertNil(result.largeMbPerS)
        XCTAssertNil(result.largeEditS, "the edit in place is of the large file")
        XCTAssertNil(result.smallFilesS)
        XCTAssertNil(result.renameS, "the rename is of the small files' folder")
        XCTAssertNil(result.tlsMbPerS)
        XCTAssertNil(result.diskFloorMbPerS, "the disk floor is measured with the large file's size")
        XCTAssertNil(result.largePeakRssMib, "no large file, no peak read after it")
        XCTAssertNotNil(result.editP50Ms)
    }
}
