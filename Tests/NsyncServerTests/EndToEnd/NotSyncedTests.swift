import Foundation
import XCTest
@testable import NsyncServer

/// What cannot sync (FIFOs, sockets, names that are not UTF-8) is said at
/// once, in the log and `nsyncd status`, when it appears while the daemon
/// runs, not only by the next start-up scan; the status forgets it when it
/// goes. The other nodes get everything else around it.
final class EndToEndNotSyncedTests: ClusterTestCase {
    func testSpecialFilesAndBadNamesMadeWhileRunningAreReportedUntilTheyGo() throws {
        let cluster = try makeCluster()
        try cluster.waitUntilConverged()
        XCTAssertNil(try cluster.status(0).notSyncedCount)

        XCTAssertEqual(mkfifo(cluster.path(0, "pipe"), 0o644), 0)
        try cluster.write(0, "d/file.txt", "synced\n")
        XCTAssertEqual(mkfifo(cluster.path(0, "d/inner-pipe"), 0o600), 0)
        XCTAssertTrue(createFile(rawPath: cluster.path(0, "bad"), suffix: [0xfe]))
        try cluster.write(0, "marker.txt", "written last\n")

        let expected: Set<String> = [
            SkippedEntry(path: "pipe", reason: .specialFile).description,
            SkippedEntry(path: "d/inner-pipe", reason: .specialFile).description,
            SkippedEntry(path: "bad\u{FFFD}", reason: .invalidName).description,
        ]
        let status = try cluster.poll("the three entries in node1's status", timeout: 15,
                                      detail: { (try? cluster.status(0).rendered()) ?? "" }) { () -> NodeStatus? in
            let status = try cluster.status(0)
            return Set(status.notSynced ?? []) == expected ? status : nil
        }
        XCTAssertEqual(status.notSyncedCount, 3)
        XCTAssertNil(status.notSyncedCountIsLowerBound)
        XCTAssertTrue(status.rendered().contains("not synced here: 3"), status.rendered())
        XCTAssertTrue(cluster.log(0).contains("not syncing pipe: skipped"), cluster.logTail(0))
        XCTAssertTrue(cluster.log(0).contains("not syncing d/inner-pipe: skipped"), cluster.logTail(0))

        for node in 1..<cluster.count {
            try cluster.poll("marker.txt on node\(node + 1)", timeout: 20) {
                cluster.readText(node, "marker.txt") == "written last\n" ? true : nil
            }
            try cluster.poll("d/file.txt on node\(node + 1)", timeout: 20) {
                cluster.readText(node, "d/file.txt") == "synced\n" ? true : nil
            }
            let names = try FileManager.default.contentsOfDirectory(atPath: cluster.path(node)).filter { $0 != ".nsync" }
            XCTAssertEqual(Set(names), ["d", "marker.txt"], "on node\(node + 1)")
            XCTAssertNil(try cluster.status(node).notSyncedCount, "node\(node + 1) has none of its own")
        }

        // Gone one by one: the status follows.
        XCTAssertEqual(unlink(cluster.path(0, "pipe")), 0)
        var bad = Array(cluster.path(0, "bad").utf8) + [0xfe, 0]
        XCTAssertEqual(bad.withUnsafeMutableBufferPointer {
            $0.baseAddress!.withMemoryRebound(to: CChar.self, capacity: $0.count) { unlink($0) }
        }, 0)
        try cluster.poll("node1's status down to d/inner-pipe", timeout: 15) {
            try cluster.status(0).notSynced == [SkippedEntry(path: "d/inner-pipe", reason: .specialFile).description] ? true : nil
        }
        try FileManager.default.removeItem(atPath: cluster.path(0, "d"))
        try cluster.poll("node1's status without entries", timeout: 15) {
            try cluster.status(0).notSyncedCount == nil ? true : nil
        }

        // One made while the node was down: the start-up scan reports it.
        try cluster.kill(0, signal: SIGTERM)
        XCTAssertEqual(mkfifo(cluster.path(0, "later-pipe"), 0o644), 0)
        try cluster.restart(0)
        try cluster.poll("the start-up scan's entry in node1's status", timeout: 20) {
            try? cluster.status(0).notSynced == [SkippedEntry(path: "later-pipe", reason: .specialFile).description] ? true : nil
        }
    }
}

/// A synced file replaced by a FIFO (mv fifo x, or rm x; mkfifo x) is gone from that
/// node's tree: its deletion reaches the others. The FIFO stays, never
/// replaced by a later version from elsewhere, which arrives once it goes.
final class EndToEndSpecialFileReplacesSyncedFileTests: ClusterTestCase {
    func testAFileReplacedByAFIFOIsDeletedElsewhereAndTheFIFOIsNeverReplaced() throws {
        let cluster = try makeCluster()
        try cluster.write(0, "x.txt", "first\n")
        try cluster.write(0, "gone-offline.txt", "second\n")
        try cluster.waitUntilConverged()

        // Made outside and renamed over it: no event but the FIFO's arrival.
        let outside = cluster.path(1, "") + "/../x-fifo"
        XCTAssertEqual(mkfifo(outside, 0o644), 0)
        XCTAssertEqual(rename(outside, cluster.path(1, "x.txt")), 0)
        for node in [0, 2] {
            try cluster.poll("x.txt deleted on node\(node + 1)", timeout: 20, detail: { cluster.logTail(1) }) {
                cluster.read(node, "x.txt") == nil ? true : nil
            }
        }
        try cluster.poll("x.txt listed as not synced on node2", timeout: 15,
                         detail: { (try? cluster.status(1).rendered()) ?? "" }) {
            try cluster.status(1).notSynced == [SkippedEntry(path: "x.txt", reason: .specialFile).description] ? true : nil
        }

        // A new x.txt from node1: node3 gets it, node2's FIFO stays.
        try cluster.write(0, "x.txt", "written again\n")
        try cluster.write(0, "after.txt", "after\n")
        for node in [1, 2] {
            try cluster.poll("after.txt on node\(node + 1)", timeout: 20) {
                cluster.readText(node, "after.txt") == "after\n" ? true : nil
            }
        }
        try cluster.poll("x.txt written again on node3", timeout: 20) {
            cluster.readText(2, "x.txt") == "written again\n" ? true : nil
        }
        XCTAssertEqual(try FileSystem.status(cluster.path(1, "x.txt")).kind, .other, "node2's FIFO is never replaced")
        XCTAssertEqual(cluster.readText(0, "x.txt"), "written again\n", "node1 keeps its file: node2 announced no deletion of it")

        // The FIFO goes: node2 fetches the file.
        XCTAssertEqual(unlink(cluster.path(1, "x.txt")), 0)
        try cluster.poll("x.txt on node2 once its FIFO is gone", timeout: 20, detail: { cluster.logTail(1) }) {
            cluster.readText(1, "x.txt") == "written again\n" ? true : nil
        }

        // Replaced while the node was down: the start-up scan announces the deletion.
        try cluster.kill(2, signal: SIGTERM)
        XCTAssertEqual(unlink(cluster.path(2, "gone-offline.txt")), 0)
        XCTAssertEqual(mkfifo(cluster.path(2, "gone-offline.txt"), 0o644), 0)
        try cluster.restart(2)
        for node in [0, 1] {
            try cluster.poll("gone-offline.txt deleted on node\(node + 1)", timeout: 20, detail: { cluster.logTail(2) }) {
                cluster.read(node, "gone-offline.txt") == nil ? true : nil
            }
        }
        XCTAssertEqual(try FileSystem.status(cluster.path(2, "gone-offline.txt")).kind, .other)
    }
}
