import XCTest
@testable import NsyncServer

/// Raft paper §5.3-5.4 (log replication, commit rule) plus batching,
/// pipelining and conflict-term back-off (etcd's flow control).
final class RaftReplicationTests: XCTestCase {
    func testProposalsReplicateAndApplyOnEveryNodeInOrder() throws {
        var cluster = try RaftTestCluster(["a", "b", "c"])
        cluster.campaign("a")
        for i in 1...20 { cluster.propose("a", "cmd\(i)", id: UInt64(i)) }
        cluster.deliverAll()
        cluster.tickAll(2)
        let expected = (1...20).map { "cmd\($0)" }
        for name in ["a", "b", "c"] { XCTAssertEqual(cluster.commands(name), expected, name) }
        XCTAssertEqual(cluster.outcome("a", 20), .committed(index: 21))
    }

    func testLeaderCommitsEarlierTermEntryOnlyThroughAnEntryOfItsOwnTerm() throws {
        // Figure 8: an entry of term 2 on a majority is still not committed by
        // a leader of term 3 until that leader's own entry reaches a majority.
        let recovered = RaftRecoveredState(hardState: HardState(term: 2), entries: entries([1, 2]))
        var raft = try makeRaft("a", recovered: recovered)
        var update = raft.forceElection(voters: ["b"])
        XCTAssertEqual(raft.role, .leader)
        XCTAssertEqual(raft.term, 3)
        XCTAssertEqual(update.entries.last?.kind, .noop)
        update = raft.step(update.persistedEvent!)
        update = raft.deliver("b", .appendResponse(.accepted(matchIndex: 2)))
        XCTAssertEqual(raft.commitIndex, 0, "index 2 (term 2) is on a majority but must not commit by counting")
        XCTAssertTrue(update.committedEntries.isEmpty)
        update = raft.deliver("b", .appendResponse(.accepted(matchIndex: 3)))
        XCTAssertEqual(raft.commitIndex, 3, "the no-op of term 3 commits, and everything before it")
        XCTAssertEqual(update.committedEntries.map(\.index), [1, 2, 3])
    }

    func testLeaderCountsItsOwnCopyOnlyAfterItIsPersisted() throws {
        var raft = try makeRaft("a")
        let update = raft.forceElection(voters: ["b"])
        let noopAck = try XCTUnwrap(update.persistedEvent)
        _ = raft.deliver("b", .appendResponse(.accepted(matchIndex: 1)))
        XCTAssertEqual(raft.commitIndex, 0, "b alone is not a majority while the leader's copy is not durable")
        _ = raft.step(noopAck)
        XCTAssertEqual(raft.commitIndex, 1)
        // A stale acknowledgement (of entries since overwritten) is ignored.
        _ = raft.step(.persisted(upTo: 1, term: 99))
        XCTAssertEqual(raft.persistedIndex, 1)
    }

    func testNewLeaderCommitsItsNoopOnElection() throws {
        var cluster = try RaftTestCluster(["a", "b", "c"])
        cluster.campaign("a")
        cluster.propose("a", "x", id: 1)
        cluster.deliverAll()
        cluster.isolate("a")
        cluster.tickAll(40)
        let leader = try XCTUnwrap(cluster.leaders.first { $0 != "a" })
        let term = cluster[leader].term
        let noop = cluster[leader].log.entries.last { $0.term == term }
        XCTAssertEqual(noop?.kind, .noop)
        XCTAssertEqual(cluster[leader].commitIndex, noop?.index, "the new leader's no-op is committed")
    }

    func testFollowerOverwritesConflictingUncommittedSuffix() throws {
        let recovered = RaftRecoveredState(hardState: HardState(term: 2, commit: 1), entries: entries([1, 2, 2, 2]))
        var raft = try makeRaft("c", recovered: recovered)
        let replacement = [RaftEntry(term: 3, index: 3, data: [33]), RaftEntry(term: 3, index: 4, data: [44])]
        let update = raft.deliver("a", term: 3, .append(prevIndex: 2, prevTerm: 2, entries: replacement, commit: 2))
        XCTAssertEqual(update.entries, replacement, "storage overwrites from index 3")
        XCTAssertEqual(update.messages.first?.kind, .appendResponse(.accepted(matchIndex: 4)))
        XCTAssertEqual(raft.log.lastIndex, 4)
        XCTAssertEqual(raft.log.term(at: 4), 3)
        XCTAssertEqual(update.committedEntries.map(\.index), [1, 2], "after a restart committed entries are applied again, up to the leader's commit")
    }

    func testDuplicateAppendDoesNotTruncateNewerEntries() throws {
        let recovered = RaftRecoveredState(hardState: HardState(term: 1), entries: entries([1, 1, 1, 1]))
        var raft = try makeRaft("c", recovered: recovered)
        let old = Array(raft.log.entries[1...1])
        let update = raft.deliver("a", term: 1, .append(prevIndex: 1, prevTerm: 1, entries: old, commit: 0))
        XCTAssertTrue(update.entries.isEmpty)
        XCTAssertEqual(raft.log.lastIndex, 4)
        XCTAssertEqual(update.messages.first?.kind, .appendResponse(.accepted(matchIndex: 2)))
    }

    func testFollowerRejectionCarriesConflictTermHint() throws {
        let recovered = RaftRecoveredState(hardState: HardState(term: 3), entries: entries([1, 2, 2, 2, 2, 3, 3]))
        var raft = try makeRaft("c", recovered: recovered)
        // The leader believes index 7 has term 4; ours has 3. The last index with
        // term <= 4 at or below 7 is 7 itself (term 3).
        var update = raft.deliver("a", term: 5, .append(prevIndex: 7, prevTerm: 4, entries: [], commit: 0))
        XCTAssertEqual(update.messages.first?.kind, .appendResponse(.rejected(rejectedIndex: 7, hintIndex: 7, hintTerm: 3)))
        // Probing past our end: hint at our last index.
        update = raft.deliver("a", term: 5, .append(prevIndex: 20, prevTerm: 4, entries: [], commit: 0))
        XCTAssertEqual(update.messages.first?.kind, .appendResponse(.rejected(rejectedIndex: 20, hintIndex: 7, hintTerm: 3)))
        // The leader says index 6 has term 1: skip our whole terms 3 and 2.
        update = raft.deliver("a", term: 5, .append(prevIndex: 6, prevTerm: 1, entries: [], commit: 0))
        XCTAssertEqual(update.messages.first?.kind, .appendResponse(.rejected(rejectedIndex: 6, hintIndex: 1, hintTerm: 1)))
    }

    func testLeaderBacksOffOverADivergentTermInFewRoundTrips() throws {
        // b's log diverged in a long term-2 tail; the leader's log has term 3 there.
        var cluster = try RaftTestCluster(["a", "b", "c"])
        let leaderLog = entries([1, 1] + Array(repeating: 3, count: 50))
        let followerLog = entries([1, 1] + Array(repeating: 2, count: 80))
        cluster["a"] = try makeRaft("a", recovered: RaftRecoveredState(hardState: HardState(term: 3, commit: 2), entries: leaderLog))
        cluster["b"] = try makeRaft("b", recovered: RaftRecoveredState(hardState: HardState(term: 3, commit: 2), entries: followerLog))
        cluster["c"] = try makeRaft("c", recovered: RaftRecoveredState(hardState: HardState(term: 3, commit: 2), entries: leaderLog))
        cluster.cut = [["a", "b"], ["b", "a"]]
        cluster.campaign("a")
        XCTAssertEqual(cluster.leaders, ["a"])
        cluster.heal()
        let before = cluster.delivered
        cluster.tickAll(1)
        // Heartbeat, its answer, then at most a couple of probe rounds.
        XCTAssertEqual(cluster["b"].log.lastIndex, cluster["a"].log.lastIndex)
        XCTAssertEqual(cluster["b"].log.term(at: 52), 3)
        XCTAssertLessThanOrEqual(cluster.delivered - before, 16, "one probe per conflicting term, not per entry")
    }

    func testLeaderPipelinesAppendsUpToTheInflightLimit() throws {
        var raft = try makeRaft("a") { $0.maxInflightAppends = 3 }
        var update = raft.forceElection(voters: ["b"])
        _ = raft.step(update.persistedEvent!)
        update = raft.deliver("b", .appendResponse(.accepted(matchIndex: 1)))
        XCTAssertEqual(raft.progress[0].state, .replicate)
        var sentToB = 0
        for i in 1...10 {
            update = raft.step(.propose(data: [UInt8(i)], id: ProposalID(UInt64(i))))
            sentToB += update.appends.filter { $0.to == "b" }.count
        }
        XCTAssertEqual(sentToB, 3, "three appends in flight, the rest waits")
        update = raft.deliver("b", .appendResponse(.accepted(matchIndex: 3)))
        let next = update.appends.filter { $0.to == "b" }
        XCTAssertEqual(next.count, 1, "two slots freed, but one batch carries everything pending")
        XCTAssertEqual(next.first?.prevIndex, 4)
        XCTAssertEqual(next.first?.entries.map(\.index), Array(5...11))
    }

    func testProposalsSteppedTogetherBecomeOneWriteAndOneAppendPerFollower() throws {
        var raft = try makeRaft("a")
        var update = raft.forceElection(voters: ["b"])
        _ = raft.step(update.persistedEvent!)
        _ = raft.deliver("b", .appendResponse(.accepted(matchIndex: 1)))
        _ = raft.deliver("c", .appendResponse(.accepted(matchIndex: 1)))
        let events = (1...100).map { RaftEvent.propose(data: [UInt8($0)], id: ProposalID(UInt64($0))) }
        update = raft.step(events)
        XCTAssertEqual(update.entries.count, 100)
        XCTAssertEqual(update.appends.count, 2)
        XCTAssertEqual(update.appends.map(\.entries.count), [100, 100])
    }

    func testAppendMessagesRespectTheByteLimit() throws {
        var raft = try makeRaft("a") { $0.maxAppendBytes = 1000 }
        var update = raft.forceElection(voters: ["b"])
        _ = raft.step(update.persistedEvent!)
        _ = raft.deliver("b", .appendResponse(.accepted(matchIndex: 1)))
        let events = (1...20).map { RaftEvent.propose(data: Array(repeating: UInt8($0), count: 200), id: ProposalID(UInt64($0))) }
        update = raft.step(events)
        let toB = update.appends.filter { $0.to == "b" }
        XCTAssertGreaterThan(toB.count, 1)
        for append in toB {
            XCTAssertLessThanOrEqual(append.entries.reduce(0) { $0 + $1.data.count }, 1000)
        }
        XCTAssertEqual(toB.flatMap(\.entries).map(\.index), Array(2...UInt64(toB.flatMap(\.entries).count + 1)))
        let big = raft.step(.propose(data: Array(repeating: 0, count: 1001), id: ProposalID(99)))
        XCTAssertEqual(big.outcomes, [ProposalResult(id: ProposalID(99), outcome: .failed(.tooLarge))])
    }

    func testHeartbeatNeverTellsAFollowerToCommitPastItsMatch() throws {
        var raft = try makeRaft("a")
        var update = raft.forceElection(voters: ["b"])
        _ = raft.step(update.persistedEvent!)
        _ = raft.deliver("b", .appendResponse(.accepted(matchIndex: 1)))
        update = raft.step(.propose(data: [1], id: ProposalID(1)))
        _ = raft.step(update.persistedEvent!)
        _ = raft.deliver("b", .appendResponse(.accepted(matchIndex: 2)))
        XCTAssertEqual(raft.commitIndex, 2)
        while true {
            update = raft.step(.tick)
            if !update.messages.isEmpty { break }
        }
        XCTAssertEqual(update.messages(to: "b").first?.kind, .heartbeat(commit: 2))
        XCTAssertEqual(update.messages(to: "c").first?.kind, .heartbeat(commit: 0), "c has not acknowledged anything")
    }

    func testLostAppendIsRecoveredAfterAHeartbeat() throws {
        var cluster = try RaftTestCluster(["a", "b", "c"])
        cluster.campaign("a")
        cluster.cut = [["a", "b"]]
        cluster.propose("a", "lost", id: 1)
        cluster.deliverAll()
        XCTAssertEqual(cluster["b"].log.lastIndex, 1)
        cluster.heal()
        cluster.tickAll(3)
        XCTAssertEqual(cluster.commands("b"), ["lost"])
    }
}
