import Foundation
import XCTest
@testable import NsyncServer

/// A restart applies again every Raft entry since the last snapshot, while
/// the manifest it loaded already describes the newest state of the disk.
/// Found by EndToEndChaosTests (seed 10407352893898094075 lost a file and
/// never converged): replaying an old deletion of a path that was created
/// again later must not remove the file now on disk.
final class EndToEndRestartReplayTests: ClusterTestCase {
    func testFileCreatedAgainAfterADeleteSurvivesARestartOfTheNodesHoldingIt() throws {
        let cluster = try makeCluster(extraArguments: ["--snapshot-entries", "20"], label: "replay")
        try cluster.write(0, "f.txt", "first\n")
        try cluster.waitUntilConverged()
        // A snapshot now, so the delete and the new file below are in the log after it, replayed at a restart.
        let before = try cluster.status(0).snapshotIndex
        for i in 0..<40 {
            try cluster.write(0, "filler-\(i).txt", "filler \(i)\n")
            try cluster.waitUntilConverged()
            if try (0..<cluster.count).allSatisfy({ try cluster.status($0).snapshotIndex > before }) { break }
        }
        let snapshot = try cluster.status(0).snapshotIndex
        XCTAssertGreaterThan(snapshot, before, "a snapshot was taken after f.txt's first version")

        // node2 deletes it; node1 makes it again while node2 is away, so only node1 and node3 hold the new file.
        try cluster.remove(1, "f.txt")
        try cluster.waitUntilConverged()
        try cluster.kill(1, signal: SIGTERM)
        try cluster.write(0, "f.txt", "second\n")
        try eventually(cluster, "node3 to hold f.txt's second version") {
            cluster.readText(2, "f.txt") == "second\n" && (try? cluster.status(2).pendingFiles) == 0
        }
        let applied = try cluster.status(0).appliedIndex
        XCTAssertEqual(try cluster.status(0).snapshotIndex, snapshot, "the delete and the new file are after the snapshot")

        // Both holders stop cleanly and start again: each replays the delete, then the new file.
        try cluster.kill(0, signal: SIGTERM)
        try cluster.kill(2, signal: SIGTERM)
        try cluster.restart(0)
        try cluster.restart(2)
        try cluster.waitForLeader()
        var seen = ""
        do {
            // Polled for a while: a file removed and fetched again would pass too, if it came back.
            try eventually(cluster, "f.txt to hold its second version on node1 and node3 after their restart", timeout: 10) {
                seen = "node1: \(cluster.readText(0, "f.txt").map { "\"\($0)\"" } ?? "no f.txt"), "
                    + "node3: \(cluster.readText(2, "f.txt").map { "\"\($0)\"" } ?? "no f.txt")"
                return cluster.readText(0, "f.txt") == "second\n" && cluster.readText(2, "f.txt") == "second\n"
                    && (0..<cluster.count).allSatisfy { cluster.members[$0].isRunning ? (try? cluster.status($0).pendingFiles) == 0 : true }
            }
        } catch {
            XCTFail("""
                f.txt's second version (entries up to \(applied), snapshot at \(snapshot)) is gone after a clean restart \
                of the two nodes holding it (\(seen)): the restart replays node2's delete from the log (see this type's comment)
                """)
            throw error
        }
        try cluster.restart(1)
        try cluster.waitForLeader()
        try cluster.waitUntilConverged()
        for node in 0..<cluster.count { XCTAssertEqual(cluster.readText(node, "f.txt"), "second\n", "on \(cluster.names[node])") }
    }
}
