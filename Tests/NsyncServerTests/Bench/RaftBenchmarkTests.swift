import Foundation
import XCTest
@testable import NsyncServer

final class RaftBenchmarkTests: XCTestCase {
    /// A tiny run of both parts: commands commit through three in-process
    /// nodes, and one kill -9 of a daemon leader is followed by a new leader.
    func testTinyRunCommitsCommandsAndTimesOneFailover() throws {
        let executable = try BenchTestSupport.nsyncdExecutable()
        let parent = try BenchTestSupport.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        var options = RaftBenchmark.Options()
        options.seconds = 1
        options.warmUpSeconds = 0.2
        options.window = 50
        options.commandBytes = 16
        options.failoverRounds = 1
        options.directory = parent
        let result = try RaftBenchmark.run(options, executable: executable, certificateScript: TestCertificates.scriptPath,
                                           progress: { print("RaftBenchmark: \($0)") })
        print("RaftBenchmark (debug build, tiny): \(try BenchSupport.json(result))")
        XCTAssertGreaterThan(result.commitsPerS, 0)
        XCTAssertGreaterThanOrEqual(result.commandsPerEntry, 1)
        XCTAssertLessThanOrEqual(result.commandsPerEntry, 50, "never more commands in an entry than outstanding")
        XCTAssertGreaterThan(result.p50Ms, 0)
        XCTAssertLessThanOrEqual(result.p50Ms, result.p99Ms)
        XCTAssertLessThanOrEqual(result.p99Ms, result.maxMs)
        XCTAssertGreaterThan(result.entriesPerFsync, 0)
        XCTAssertGreaterThan(result.followerEntriesPerFsync, 0)
        XCTAssertEqual(result.failoverRoundsMs.count, 1)
        let failover = try XCTUnwrap(result.failoverMs)
        XCTAssertGreaterThan(failover, 0)
        XCTAssertLessThan(failover, 30_000)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: parent), [], "the scratch directory is removed")

        let json = try BenchSupport.json(result)
        for key in ["\"commits_per_s\"", "\"p50_ms\"", "\"p99_ms\"", "\"failover_ms\"", "\"entries_per_fsync\""] {
            XCTAssertTrue(json.contains(key), "\(key) in \(json)")
        }
    }
}
