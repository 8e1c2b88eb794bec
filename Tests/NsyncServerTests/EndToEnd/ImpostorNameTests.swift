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
        try cluster.startImpostor(of: 1, at: 2)
        try cluster.poll("node1 refusing the second node2", timeout: 20, detail: { cluster.logTail(0) }) {
            cluster.log(0).contains("presents itself as node2, the name of") ? true : nil
        }
        Thread.sleep(forTimeInterval: 3)
        XCTAssertTrue(cluster.members[0].isRunning, "node1 runs on:\n\(cluster.logTail(0))")
        XCTAssertTrue(cluster.members[1].isRunning, "node2 runs on:\n\(cluster.logTail(1))")
        XCTAssertFalse(cluster.log(0).contains("listed twice"), cluster.logTail(0))
        let status = try cluster.status(0)
        XCTAssertTrue(status.recentErrors.contains { $0.contains("presents itself as node2") }, "\(status.recentErrors)")
    }
}
