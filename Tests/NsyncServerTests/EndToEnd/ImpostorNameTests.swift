import Foundation
import XCTest
@testable import NsyncServer

/// A new cluster without names in `--cluster`, one member not yet seen,
/// and an operator starts that member with another's name and
/// certificate: the healthy nodes learned that name at two addresses,
/// and one of them stopped ("cannot start Raft: peer 'node2' is listed
/// twice in --cluster"), blaming its own command line (found by probing).
/// Now the second address is refused and said, and nothing stops.
final class EndToEndImpostorNameTests: ClusterTestCase {
    func testAMemberStartedUnderAnotherMembersNameIsRefusedAndStopsNoOne() throws {
        let cluster = try makeCluster(running: [0, 1], namesPeers: false)
        let impostor = try cluster.startImpostor(of: 1, at: 2)
        try cluster.poll("node1 refusing the second node2", timeout: 20, detail: { cluster.logTail(0) }) {
            cluster.log(0).contains("presents itself as node2, the name of") ? true : nil
        }
        Thread.sleep(forTimeInterval: 3)
        XCTAssertTrue(cluster.members[0].isRunning, "node1 runs on:\n\(cluster.logTail(0))")
        XCTAssertTrue(cluster.members[1].isRunning, "node2 runs on:\n\(cluster.logTail(1))")
        XCTAssertFalse(cluster.log(0).contains("listed twice"), cluster.logTail(0))
        let status = try cluster.status(0)
        XCTAssertTrue(status.recentErrors.contains { $0.contains("presents itself as node2") }, "\(status.recentErrors)")

        // The operator stops the impostor and starts node3 as itself: the
        // name learned at its address from the impostor is learned again,
        // the real node2 is taken, and the cluster forms.
        impostor.stop(grace: 5)
        try cluster.restart(2)
        try cluster.waitForLeader()
        try cluster.write(0, "formed.txt", "the cluster formed\n")
        let tree = try cluster.waitUntilConverged(timeout: 60)
        XCTAssertTrue(tree.paths.contains("formed.txt"))
    }

    /// The impostor first: node1 learns node2's name at node3's address
    /// (and saves it), the real node2 is refused. Once the impostor is
    /// replaced by node3 itself, that address is learned again (Raft never
    /// started, so nothing depends on the name) and the cluster forms.
    func testAnImpostorSeenFirstIsForgottenOnceReplaced() throws {
        let cluster = try makeCluster(running: [0], namesPeers: false)
        let impostor = try cluster.startImpostor(of: 1, at: 2)
        try cluster.poll("node1 learning node2 at node3's address", timeout: 20, detail: { cluster.logTail(0) }) {
            cluster.log(0).contains("peer=node2") ? true : nil
        }
        try cluster.restart(1)
        try cluster.poll("node1 refusing the real node2", timeout: 20, detail: { cluster.logTail(0) }) {
            cluster.log(0).contains("presents itself as node2, the name of") ? true : nil
        }
        impostor.stop(grace: 5)
        try cluster.restart(2)
        try cluster.waitForLeader()
        try cluster.write(1, "formed.txt", "the cluster formed\n")
        XCTAssertTrue(try cluster.waitUntilConverged(timeout: 60).paths.contains("formed.txt"))
        XCTAssertTrue(cluster.log(0).contains("now presents itself as node3, not node2"), cluster.logTail(0))
    }
}
