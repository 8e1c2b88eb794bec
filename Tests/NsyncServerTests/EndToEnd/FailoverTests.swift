import Foundation
import XCTest
@testable import NsyncServer

/// Raft with real processes: the leader dies by kill -9, the two others
/// elect a new one in a higher term, writes made during and after the
/// failover sync, and the old leader comes back as a follower of the new one.
final class EndToEndFailoverTests: ClusterTestCase {
    func testKilledLeaderIsReplacedAndFollowsTheNewLeaderAfterRestartWhileWritesConverge() throws {
        let cluster = try makeCluster()
        let oldLeader = try cluster.waitForLeader()
        let oldTerm = try cluster.status(oldLeader).term
        let survivors = (0..<cluster.count).filter { $0 != oldLeader }
        try cluster.write(oldLeader, "before.txt", "written on the first leader\n")
        try cluster.waitUntilConverged()

        try cluster.kill(oldLeader, signal: SIGKILL)
        let killed = Date()
        // Written while there may be no leader: kept and proposed once there is one.
        try cluster.write(survivors[0], "during.txt", "written during the failover\n")

        let newLeader = try cluster.waitForLeader(timeout: 10)
        let elected = Date().timeIntervalSince(killed)
        XCTAssertNotEqual(newLeader, oldLeader)
        let newTerm = try cluster.status(newLeader).term
        XCTAssertGreaterThan(newTerm, oldTerm, "a new leader is elected in a higher term")
        for node in survivors {
            let status = try cluster.status(node)
            XCTAssertEqual(status.leader, cluster.names[newLeader], "\(cluster.names[node]) names the new leader")
            XCTAssertEqual(status.term, newTerm, "\(cluster.names[node]) is in the new term")
        }
        try cluster.write(survivors[1], "after.txt", "written after the failover\n")
        try cluster.waitUntilConverged()

        try cluster.restart(oldLeader)
        let leaderStatus = try cluster.status(newLeader)
        let rejoined = try cluster.poll("\(cluster.names[oldLeader]) to follow \(cluster.names[newLeader]) in term \(newTerm)",
                                        timeout: 15) { () -> NodeStatus? in
            guard let status = try? cluster.status(oldLeader, timeout: 1), status.role == "follower",
                  status.leader == cluster.names[newLeader], status.term == newTerm,
                  status.commitIndex >= leaderStatus.commitIndex else { return nil }
            return status
        }
        XCTAssertEqual(rejoined.leader, cluster.names[newLeader])
        XCTAssertEqual(try cluster.waitForLeader(), newLeader, "the old leader's return does not disturb the new one")
        XCTAssertEqual(try cluster.status(newLeader).term, newTerm)

        try cluster.write(oldLeader, "back.txt", "written on the old leader after its return\n")
        let tree = try cluster.waitUntilConverged()
        XCTAssertEqual(tree.paths, ["after.txt", "back.txt", "before.txt", "during.txt"])
        XCTAssertEqual(cluster.readText(oldLeader, "during.txt"), "written during the failover\n")
        print("failover: \(cluster.names[oldLeader]) killed in term \(oldTerm), \(cluster.names[newLeader]) elected in term \(newTerm) "
              + String(format: "%.2f s later", elected))
    }

    /// Killing the leader again and again: every time a new one takes over
    /// and nothing written in between is lost.
    func testThreeLeaderKillsInARowLoseNoWrite() throws {
        let cluster = try makeCluster()
        var terms: [UInt64] = []
        for round in 0..<3 {
            let leader = try cluster.waitForLeader()
            terms.append(try cluster.status(leader).term)
            let follower = (leader + 1) % cluster.count
            try cluster.write(follower, "round-\(round).txt", "round \(round)\n")
            try cluster.kill(leader, signal: SIGKILL)
            try cluster.write(follower, "round-\(round)-during.txt", "round \(round), leader dead\n")
            try cluster.waitForLeader(timeout: 10)
            try cluster.restart(leader)
            try cluster.waitUntilConverged()
        }
        let tree = try cluster.waitUntilConverged()
        XCTAssertEqual(tree.paths.count, 6, "\(tree.paths)")
        XCTAssertEqual(terms, terms.sorted(), "terms only grow: \(terms)")
        XCTAssertEqual(Set(terms).count, 3, "every kill led to a new term: \(terms)")
    }
}
