import XCTest
@testable import NsyncServer

/// Raft paper §5.2 (leader election) plus pre-vote and check-quorum (thesis §9.6, §6.2).
final class RaftElectionTests: XCTestCase {
    func testFollowerTimesOutIntoPreVoteWithoutBumpingItsTerm() throws {
        var raft = try makeRaft()
        var update = RaftUpdate()
        for _ in 0..<raft.config.electionTicks.upperBound where raft.role == .follower {
            update = raft.step(.tick)
        }
        XCTAssertEqual(raft.role, .preCandidate)
        XCTAssertEqual(raft.term, 0, "a pre-vote must not change the term")
        XCTAssertNil(update.hardState, "nothing durable changes in a pre-vote")
        XCTAssertEqual(Set(update.messages.map(\.to)), ["b", "c"])
        for message in update.messages {
            XCTAssertEqual(message.term, 1)
            XCTAssertEqual(message.kind, .preVote(lastIndex: 0, lastTerm: 0))
        }
    }

    func testElectionTimeoutsAreRandomizedWithinTheConfiguredRange() throws {
        var timeouts = Set<Int>()
        for seed in 0..<40 {
            var raft = try makeRaft { $0.randomSeed = UInt64(seed) }
            var ticks = 0
            while raft.role == .follower && ticks < 100 {
                _ = raft.step(.tick)
                ticks += 1
            }
            XCTAssertTrue((6...12).contains(ticks), "seed \(seed) timed out after \(ticks) ticks")
            timeouts.insert(ticks)
        }
        XCTAssertGreaterThanOrEqual(timeouts.count, 4, "timeouts should vary with the seed: \(timeouts)")
    }

    func testCandidateWithMajorityBecomesLeaderAndAppendsNoopOfItsTerm() throws {
        var cluster = try RaftTestCluster(["a", "b", "c"])
        cluster.campaign("a")
        XCTAssertEqual(cluster.leaders, ["a"])
        XCTAssertEqual(cluster["a"].term, 1)
        XCTAssertEqual(cluster["b"].leader, "a")
        XCTAssertEqual(cluster["c"].leader, "a")
        // The no-op is the first entry of the term and commits on its own.
        XCTAssertEqual(cluster["a"].log.entry(at: 1)?.kind, .noop)
        XCTAssertEqual(cluster["a"].log.entry(at: 1)?.term, 1)
        XCTAssertEqual(cluster["a"].commitIndex, 1)
        cluster.tickAll()
        XCTAssertEqual(cluster["b"].commitIndex, 1, "heartbeats carry the commit index")
    }

    func testNodeGrantsAtMostOneVotePerTerm() throws {
        var raft = try makeRaft("c")
        var update = raft.deliver("a", term: 1, .vote(lastIndex: 0, lastTerm: 0))
        XCTAssertEqual(update.messages.first?.kind, .voteResponse(granted: true))
        XCTAssertEqual(update.hardState?.vote, "a", "the vote is persisted before the answer goes out")
        update = raft.deliver("b", term: 1, .vote(lastIndex: 5, lastTerm: 1))
        XCTAssertEqual(update.messages.first?.kind, .voteResponse(granted: false))
        // The same candidate asking again (a retransmission) gets the same answer.
        update = raft.deliver("a", term: 1, .vote(lastIndex: 0, lastTerm: 0))
        XCTAssertEqual(update.messages.first?.kind, .voteResponse(granted: true))
    }

    func testVoteIsRefusedToCandidateWhoseLogIsLessUpToDate() throws {
        let recovered = RaftRecoveredState(hardState: HardState(term: 3), entries: entries([1, 2, 3]))
        var raft = try makeRaft("c", recovered: recovered)
        // Lower last term loses even with a longer log.
        var update = raft.deliver("a", term: 4, .vote(lastIndex: 9, lastTerm: 2))
        XCTAssertEqual(update.messages.first?.kind, .voteResponse(granted: false))
        // Same last term but shorter log loses.
        update = raft.deliver("a", term: 5, .vote(lastIndex: 2, lastTerm: 3))
        XCTAssertEqual(update.messages.first?.kind, .voteResponse(granted: false))
        // Same last term, same length wins.
        update = raft.deliver("b", term: 6, .vote(lastIndex: 3, lastTerm: 3))
        XCTAssertEqual(update.messages.first?.kind, .voteResponse(granted: true))
        XCTAssertEqual(raft.term, 6)
    }

    func testPreVoteByAPartitionedNodeDoesNotDisruptTheStableLeader() throws {
        var cluster = try RaftTestCluster(["a", "b", "c"])
        cluster.campaign("a")
        XCTAssertEqual(cluster.leaders, ["a"])
        cluster.isolate("c")
        // c times out over and over while cut off; without pre-vote its term would climb.
        cluster.tickAll(60)
        XCTAssertEqual(cluster["c"].term, 1, "an isolated node only pre-votes, it does not bump its term")
        XCTAssertNotEqual(cluster["c"].role, .leader)
        cluster.heal()
        cluster.tickAll(30)
        XCTAssertEqual(cluster.leaders, ["a"])
        XCTAssertEqual(cluster["a"].term, 1, "the leader was not deposed by the returning node")
        XCTAssertEqual(cluster["c"].leader, "a")
    }

    func testFollowerThatHearsTheLeaderRefusesPreVotes() throws {
        var raft = try makeRaft("b")
        _ = raft.deliver("a", term: 1, .heartbeat(commit: 0))
        XCTAssertEqual(raft.leader, "a")
        let update = raft.deliver("c", term: 2, .preVote(lastIndex: 10, lastTerm: 1))
        XCTAssertEqual(update.messages.first?.kind, .preVoteResponse(granted: false))
        XCTAssertEqual(raft.term, 1)
        // After an election timeout without the leader, the same request is granted.
        for _ in 0..<raft.config.electionTicks.lowerBound { _ = raft.step(.tick) }
        let later = raft.deliver("c", term: 2, .preVote(lastIndex: 10, lastTerm: 1))
        let answers = later.messages.filter { $0.to == "c" && $0.kind == .preVoteResponse(granted: true) }
        XCTAssertEqual(answers.count, 1)
        XCTAssertEqual(raft.term, 1, "granting a pre-vote does not change the term")
    }

    func testLeaderThatCannotHearAMajorityStepsDown() throws {
        var cluster = try RaftTestCluster(["a", "b", "c"])
        cluster.campaign("a")
        XCTAssertEqual(cluster.leaders, ["a"])
        cluster.isolate("a")
        var ticks = 0
        while cluster["a"].role == .leader && ticks < 100 {
            cluster.step("a", .tick)
            ticks += 1
        }
        XCTAssertEqual(cluster["a"].role, .follower)
        XCTAssertLessThanOrEqual(ticks, 2 * cluster["a"].config.electionTicks.lowerBound,
                                 "check-quorum must notice within two election timeouts")
        XCTAssertNil(cluster["a"].leader)
    }

    func testMajoritySideElectsNewLeaderAndOldLeaderFollowsAfterHeal() throws {
        var cluster = try RaftTestCluster(["a", "b", "c", "d", "e"])
        cluster.campaign("a")
        cluster.isolate("a")
        cluster.tickAll(40)
        let newLeaders = cluster.leaders.filter { $0 != "a" }
        XCTAssertEqual(newLeaders.count, 1, "majority side elects exactly one leader")
        XCTAssertNotEqual(cluster["a"].role, .leader, "old leader stepped down by check-quorum")
        cluster.heal()
        cluster.tickAll(20)
        XCTAssertEqual(cluster.leaders, newLeaders)
        XCTAssertEqual(cluster["a"].leader, newLeaders.first)
        XCTAssertEqual(cluster["a"].term, cluster[newLeaders[0]].term)
    }

    func testStaleLeaderLearnsHigherTermFromFollowerAnswer() throws {
        var raft = try makeRaft("a")
        raft.forceElection(voters: ["b"])
        XCTAssertEqual(raft.role, .leader)
        let term = raft.term
        _ = raft.deliver("c", term: term + 3, .heartbeatResponse)
        XCTAssertEqual(raft.role, .follower)
        XCTAssertEqual(raft.term, term + 3)
        XCTAssertNil(raft.leader)
    }

    func testRejectedPreVoteMajorityReturnsToFollower() throws {
        var raft = try makeRaft("a")
        while raft.role == .follower { _ = raft.step(.tick) }
        XCTAssertEqual(raft.role, .preCandidate)
        _ = raft.deliver("b", term: 0, .preVoteResponse(granted: false))
        XCTAssertEqual(raft.role, .preCandidate, "one rejection of three is not a majority")
        _ = raft.deliver("c", term: 0, .preVoteResponse(granted: false))
        XCTAssertEqual(raft.role, .follower)
        XCTAssertEqual(raft.term, 0)
    }

    func testSingleNodeClusterElectsItselfAndCommitsOnlyAfterPersistence() throws {
        var raft = try makeRaft("solo", peers: [])
        var update = RaftUpdate()
        while raft.role != .leader { update = raft.step(.tick) }
        XCTAssertEqual(raft.term, 1)
        XCTAssertEqual(update.entries.map(\.kind), [.noop])
        XCTAssertEqual(update.hardState, HardState(term: 1, vote: "solo", commit: 0))
        XCTAssertEqual(raft.commitIndex, 0, "the leader's own copy counts only once durable")
        update = raft.step(update.persistedEvent!)
        XCTAssertEqual(raft.commitIndex, 1)
        update = raft.step(.propose(data: [1], id: ProposalID(7)))
        XCTAssertTrue(update.outcomes.isEmpty)
        update = raft.step(update.persistedEvent!)
        XCTAssertEqual(update.committedEntries.map(\.data), [[1]])
        XCTAssertEqual(update.outcomes, [ProposalResult(id: ProposalID(7), outcome: .committed(index: 2))])
    }

    func testConfigErrorsTellTheOperatorWhatToFix() {
        var config = RaftConfig(name: "a", peers: ["b", "b"])
        XCTAssertThrowsError(try config.validate()) { error in
            XCTAssertTrue("\(error)".contains("listed twice"), "\(error)")
        }
        config = RaftConfig(name: "a", peers: ["b"])
        config.electionTicks = 1...3
        XCTAssertThrowsError(try config.validate()) { error in
            XCTAssertTrue("\(error)".contains("must exceed the heartbeat"), "\(error)")
        }
        config = RaftConfig(name: "", peers: ["b"])
        XCTAssertThrowsError(try Raft(config: config))
    }
}
