import Foundation
import XCTest
@testable import NsyncServer

/// `.nsyncignore` is written by users (and synced): it is read on the event
/// loop, so a FIFO there must not block the loop, a symlink is not followed
/// (to a FIFO, a device, another file) and a huge one is not read. Each is
/// an error in status, the default rules apply, and the node goes on syncing.
final class EndToEndIgnoreFileSafetyTests: ClusterTestCase {
    func testAFIFOASymlinkAndAHugeFileAsTheIgnoreFileLeaveTheNodeSyncing() throws {
        let cluster = try makeCluster()
        try cluster.write(0, ".nsyncignore", "*.tmp\n")
        try cluster.waitUntilConverged()
        let outside = cluster.path(0) + "-outside.fifo"
        XCTAssertEqual(mkfifo(outside, 0o600), 0)
        defer { unlink(outside) }
        var round = 0

        func assertStillSyncing(_ what: String, errorMentions text: String) throws {
            round += 1
            try cluster.poll("the error about \(what) in node1's status", timeout: 15,
                             detail: { (try? cluster.status(0).rendered()) ?? "" }) {
                try cluster.status(0).recentErrors.contains { $0.contains(".nsyncignore is not used") && $0.contains(text) } ? true : nil
            }
            try cluster.write(0, "after-\(round).txt", "\(what)\n")
            try cluster.write(0, "after-\(round).tmp", "no longer ignored: the defaults apply\n")
            for node in 1..<cluster.count {
                try cluster.poll("after-\(round) on node\(node + 1) (\(what))", timeout: 20, detail: { cluster.logTail(0) }) {
                    cluster.readText(node, "after-\(round).txt") == "\(what)\n"
                        && cluster.readText(node, "after-\(round).tmp") != nil ? true : nil
                }
            }
        }

        // A FIFO renamed onto it (a FIFO made in place is not looked at).
        XCTAssertEqual(mkfifo(cluster.path(0, "staging.fifo"), 0o600), 0)
        XCTAssertEqual(rename(cluster.path(0, "staging.fifo"), cluster.path(0, ".nsyncignore")), 0)
        try assertStillSyncing("a FIFO", errorMentions: "not a regular file")

        XCTAssertEqual(unlink(cluster.path(0, ".nsyncignore")), 0)
        XCTAssertEqual(symlink(outside, cluster.path(0, ".nsyncignore")), 0)
        try assertStillSyncing("a symlink to a FIFO outside", errorMentions: "open")

        XCTAssertEqual(unlink(cluster.path(0, ".nsyncignore")), 0)
        let huge = String(repeating: "# a comment line of a huge ignore file\n", count: 40_000)  // 1.5 MiB
        try cluster.write(0, ".nsyncignore", huge)
        try assertStillSyncing("a 1.5 MiB file", errorMentions: "larger than")
        XCTAssertTrue(try cluster.status(0).role != "", "node1 answers")
    }
}
