import Foundation
import XCTest
@testable import NsyncServer

/// A FIFO that replaces a new file whose announcement is still on its way
/// (a slow network, no quorum for a while) is that file's deletion too,
/// once the announcement commits: else the other nodes keep a record no
/// node can serve, and ask for it for good.
final class EndToEndSpecialFileOverPendingFileTests: ClusterTestCase {
    func testAFIFOReplacingANewFileWhosePutIsPendingAnnouncesItsDeletion() throws {
        let cluster = try makeCluster()
        try cluster.write(0, "before.txt", "before\n")
        try cluster.waitUntilConverged()

        // No quorum: node1's announcement of x.txt stays pending.
        try cluster.kill(1, signal: SIGTERM)
        try cluster.kill(2, signal: SIGTERM)
        try cluster.write(0, "x.txt", "new file\n")
        try cluster.poll("x.txt looked at and announced (pending) on node1", timeout: 15,
                         detail: { (try? cluster.status(0).rendered()) ?? "" }) {
            try cluster.status(0).pendingAnnouncements >= 1 ? true : nil
        }
        Thread.sleep(forTimeInterval: 0.5)  // the look is done; the put waits for a quorum
        // Renamed over it (mv fifo x.txt): the watcher reports the FIFO's arrival only.
        let outside = cluster.path(0, "") + "/../x-fifo"
        XCTAssertEqual(mkfifo(outside, 0o644), 0)
        XCTAssertEqual(rename(outside, cluster.path(0, "x.txt")), 0)
        try cluster.poll("x.txt listed as not synced on node1", timeout: 15,
                         detail: { (try? cluster.status(0).rendered()) ?? "" }) {
            try cluster.status(0).notSynced == [SkippedEntry(path: "x.txt", reason: .specialFile).description] ? true : nil
        }

        try cluster.restart(1)
        try cluster.restart(2)
        try cluster.write(0, "after.txt", "after\n")
        for node in [1, 2] {
            try cluster.poll("after.txt on node\(node + 1)", timeout: 30) {
                cluster.readText(node, "after.txt") == "after\n" ? true : nil
            }
        }
        // x.txt is gone from node1's tree: its deletion must reach the index,
        // or node2 and node3 try for ever to fetch a file only node1 "holds".
        let settled = { () throws -> Bool in
            try [1, 2].allSatisfy { node in
                let status = try cluster.status(node)
                return status.pendingFiles == 0 && (status.unavailableFiles ?? 0) == 0
            }
        }
        let detail = { ((try? cluster.status(1).rendered()) ?? "") + "\n" + cluster.logTail(1, lines: 10) }
        try cluster.poll("nothing left to fetch, nothing unavailable on node2 and node3", timeout: 30, detail: detail) {
            try settled() ? true : nil
        }
        // Held for a while, not a moment between two refused attempts.
        for _ in 0..<10 {
            Thread.sleep(forTimeInterval: 0.5)
            XCTAssertTrue(try settled(), detail())
        }
        XCTAssertEqual(try FileSystem.status(cluster.path(0, "x.txt")).kind, .other, "node1's FIFO stays")
    }
}

/// A FIFO renamed onto `.nsyncignore` leaves the rules in force on that
/// node (EndToEndIgnoreFileSafetyTests) and is no deletion of the rules
/// for the others: they keep their copy and its rules, and what the rules
/// ignore stays where it was written.
final class EndToEndIgnoreFileFIFOTests: ClusterTestCase {
    func testAFIFOOnTheIgnoreFileLeavesTheRulesInForceEverywhere() throws {
        let cluster = try makeCluster()
        try cluster.write(0, ".nsyncignore", "*.tmp\n")
        try cluster.waitUntilConverged()
        XCTAssertEqual(mkfifo(cluster.path(0, "staging.fifo"), 0o600), 0)
        XCTAssertEqual(rename(cluster.path(0, "staging.fifo"), cluster.path(0, ".nsyncignore")), 0)
        try cluster.poll("the error about the FIFO in node1's status", timeout: 15,
                         detail: { (try? cluster.status(0).rendered()) ?? "" }) {
            try cluster.status(0).recentErrors.contains { $0.contains(".nsyncignore is not used") } ? true : nil
        }
        try cluster.write(0, "marker.txt", "after the FIFO\n")
        for node in [1, 2] {
            try cluster.poll("marker.txt on node\(node + 1)", timeout: 20) {
                cluster.readText(node, "marker.txt") == "after the FIFO\n" ? true : nil
            }
        }
        Thread.sleep(forTimeInterval: 2)  // past Node.ignoreFileGoneWait
        for node in [1, 2] {
            XCTAssertEqual(cluster.readText(node, ".nsyncignore"), "*.tmp\n", "node\(node + 1)'s rules are gone")
        }
        try cluster.write(1, "build.tmp", "ignored by the rules\n")
        try cluster.write(1, "marker2.txt", "written after build.tmp\n")
        try cluster.poll("marker2.txt on node3", timeout: 20) {
            cluster.readText(2, "marker2.txt") == "written after build.tmp\n" ? true : nil
        }
        Thread.sleep(forTimeInterval: 1)
        XCTAssertNil(cluster.readText(2, "build.tmp"), "node2's *.tmp file synced to node3: the rules are not in force there")
    }
}
