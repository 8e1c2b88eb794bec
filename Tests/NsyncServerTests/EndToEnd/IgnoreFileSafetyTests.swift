import Foundation
import XCTest
@testable import NsyncServer

/// `.nsyncignore` is written by users (and synced), and read on the event
/// loop: a FIFO there must not block the loop, a symlink is not followed,
/// a huge one is not read. Each is an error in status, said once,
/// and the rules in force stay (after a restart too), so nothing they
/// ignore starts syncing; the node goes on syncing everything else.
final class EndToEndIgnoreFileSafetyTests: ClusterTestCase {
    func testAnUnusableIgnoreFileLeavesTheRulesInForceAndTheNodeSyncing() throws {
        let cluster = try makeCluster()
        try cluster.write(0, ".nsyncignore", "*.tmp\n")
        try cluster.waitUntilConverged()
        let outside = cluster.path(0) + "-outside.fifo"
        XCTAssertEqual(mkfifo(outside, 0o600), 0)
        defer { unlink(outside) }
        var round = 0

        func errors(_ text: String) throws -> Int {
            try cluster.status(0).recentErrors.filter { $0.contains(".nsyncignore is not used") && $0.contains(text) }.count
        }
        func assertRulesStayAndSyncGoesOn(_ what: String, errorMentions text: String) throws {
            round += 1
            try cluster.poll("the error about \(what) in node1's status", timeout: 15,
                             detail: { (try? cluster.status(0).rendered()) ?? "" }) { try errors(text) >= 1 ? true : nil }
            try cluster.write(0, "ignored-\(round).tmp", "still ignored\n")
            try cluster.write(0, "after-\(round).txt", "\(what)\n")
            for node in 1..<cluster.count {
                try cluster.poll("after-\(round).txt on node\(node + 1) (\(what))", timeout: 20, detail: { cluster.logTail(0) }) {
                    cluster.readText(node, "after-\(round).txt") == "\(what)\n" ? true : nil
                }
                XCTAssertNil(cluster.readText(node, "ignored-\(round).tmp"), "\(what): the rules in force stay")
            }
            XCTAssertEqual(try errors(text), 1, "said once")
        }

        // A FIFO renamed onto it (a FIFO made in place is not looked at).
        XCTAssertEqual(mkfifo(cluster.path(0, "staging.fifo"), 0o600), 0)
        XCTAssertEqual(rename(cluster.path(0, "staging.fifo"), cluster.path(0, ".nsyncignore")), 0)
        try assertRulesStayAndSyncGoesOn("a FIFO", errorMentions: "(not a regular file)")

        // Each replaces it by a rename, as an editor does: never absent
        // (no .nsyncignore at all means the defaults).
        XCTAssertEqual(symlink(outside, cluster.path(0, "staging.link")), 0)
        XCTAssertEqual(rename(cluster.path(0, "staging.link"), cluster.path(0, ".nsyncignore")), 0)
        try assertRulesStayAndSyncGoesOn("a symlink to a FIFO outside", errorMentions: "(a symlink)")

        let huge = String(repeating: "# a comment line of a huge ignore file\n", count: 40_000)  // 1.5 MiB
        try cluster.write(0, "staging.huge", huge)
        XCTAssertEqual(rename(cluster.path(0, "staging.huge"), cluster.path(0, ".nsyncignore")), 0)
        try assertRulesStayAndSyncGoesOn("a 1.5 MiB file", errorMentions: "(larger than")

        // Restarted while it is unusable: the rules last used are kept in .nsync.
        try cluster.restart(0)
        round += 1
        try cluster.write(0, "ignored-\(round).tmp", "still ignored after a restart\n")
        try cluster.write(0, "after-\(round).txt", "restarted\n")
        try cluster.poll("after-\(round).txt on node2", timeout: 30) {
            cluster.readText(1, "after-\(round).txt") == "restarted\n" ? true : nil
        }
        XCTAssertNil(cluster.readText(1, "ignored-\(round).tmp"), "the kept rules apply at start-up")
    }

    /// Deleted, it is looked for once more a moment later; still gone, the
    /// defaults apply (what it ignored syncs from then on).
    func testDeletingTheIgnoreFileBringsTheDefaultsBack() throws {
        let cluster = try makeCluster()
        try cluster.write(0, ".nsyncignore", "*.tmp\n")
        try cluster.waitUntilConverged()
        try cluster.write(0, "before.tmp", "ignored\n")
        XCTAssertEqual(unlink(cluster.path(0, ".nsyncignore")), 0)
        try cluster.poll(".nsyncignore gone on node2", timeout: 20) {
            FileManager.default.fileExists(atPath: cluster.path(1, ".nsyncignore")) ? nil : true
        }
        usleep(UInt32(Node.ignoreFileGoneWait) * 1_000 + 500_000)
        try cluster.write(0, "after.tmp", "synced now\n")
        try cluster.poll("after.tmp on node2", timeout: 20) { cluster.readText(1, "after.tmp") == "synced now\n" ? true : nil }
        XCTAssertFalse(try cluster.status(0).recentErrors.contains { $0.contains(".nsyncignore") })
    }
}
