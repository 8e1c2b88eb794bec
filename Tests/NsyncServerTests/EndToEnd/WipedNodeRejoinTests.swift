import Foundation
import XCTest
@testable import NsyncServer

/// A node down long enough for the leader to notice, then started with
/// its state gone (`.nsync` removed, or the whole directory): it rejoins
/// empty and converges like a new node. The leader had it at an old
/// match and took its rejections for stale answers: it stayed at commit 0
/// for good, it and the leader spinning (found by probing).
final class EndToEndWipedNodeRejoinTests: ClusterTestCase {
    func testANodeStartedWithItsStateRemovedCatchesUp() throws {
        let cluster = try makeCluster()
        for i in 1...5 { try cluster.write(0, "f\(i).txt", "file \(i)\n") }
        try cluster.waitUntilConverged()
        try cluster.kill(2, signal: SIGKILL)
        try cluster.write(0, "while-down.txt", "written while node3 was down\n")
        Thread.sleep(forTimeInterval: 3)  // the leader notices node3 is gone
        try FileManager.default.removeItem(atPath: cluster.path(2, ".nsync"))
        try cluster.restart(2)
        try cluster.poll("while-down.txt on node3, which rejoined without state", timeout: 30,
                         detail: { ((try? cluster.status(2).rendered()) ?? "") + "\n" + cluster.logTail(2) }) {
            cluster.readText(2, "while-down.txt") == "written while node3 was down\n" ? true : nil
        }
        try cluster.write(1, "after.txt", "after\n")
        let tree = try cluster.waitUntilConverged()
        XCTAssertTrue(tree.paths.contains("after.txt"))
        XCTAssertTrue(tree.paths.contains("f5.txt"))
    }
}
