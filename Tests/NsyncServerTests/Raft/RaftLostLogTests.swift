import XCTest
@testable import NsyncServer

/// A follower whose log is gone (its `.nsync` removed, or `.nsync/raft`
/// moved aside as the corrupt-log error advises) rejoins empty under the
/// same name. The leader had it at some `match`, which only ever grew:
/// its rejections of what it once acknowledged were taken for stale
/// answers, heartbeats said nothing, and it stayed empty for good while
/// leader and follower spun (found by probing, 70% of runs). Now a
/// heartbeat above its log is answered with a rejection and the leader
/// probes back to what it has.
final class RaftLostLogTests: XCTestCase {
    private func wipe(_ name: NodeName, in cluster: inout RaftTestCluster) throws {
        var config = RaftConfig(name: name, peers: cluster.names)
        config.randomSeed = 99
        cluster[name] = try Raft(config: config)
        cluster.applied[name] = []
    }

    /// Leader a, and cmd1...cmd5 on every node.
    private func replicatedFiveCommands() throws -> RaftTestCluster {
        var cluster = try RaftTestCluster(["a", "b", "c"])
        cluster.campaign("a")
        for i in 1...5 { cluster.propose("a", "cmd\(i)", id: UInt64(i)) }
        cluster.deliverAll()
        cluster.tickAll(2)
        return cluster
    }

    func testAFollowerThatLostItsLogCatchesUpFromHeartbeatsAlone() throws {
        var cluster = try replicatedFiveCommands()
        XCTAssertEqual(cluster.commands("c").count, 5)

        try wipe("c", in: &cluster)
        let before = cluster.delivered
        cluster.tickAll(10)  // heartbeats only: nothing new is proposed
        XCTAssertEqual(cluster.commands("c"), (1...5).map { "cmd\($0)" }, "c caught up from the leader's log")
        XCTAssertLessThan(cluster.delivered - before, 200, "a few probes, not a busy loop")
        XCTAssertEqual(cluster.leaders, ["a"])
    }

    func testAFollowerThatLostItsLogCatchesUpWhenTheNextEntryComes() throws {
        var cluster = try replicatedFiveCommands()
        try wipe("c", in: &cluster)
        cluster.propose("a", "cmd6", id: 6)  // before any heartbeat reaches c
        cluster.deliverAll()
        cluster.tickAll(4)
        XCTAssertEqual(cluster.commands("c"), (1...6).map { "cmd\($0)" })
        for name in ["a", "b"] { XCTAssertEqual(cluster.commands(name), (1...6).map { "cmd\($0)" }, name) }
    }
}
