import XCTest
@testable import NsyncServer

/// Every proposal gets exactly one outcome: committed at an index, or failed
/// with a reason that says whether it may still be applied.
final class RaftProposalTests: XCTestCase {
    func testFollowerForwardsProposalAndReportsCommittedWhenItAppliesIt() throws {
        var cluster = try RaftTestCluster(["a", "b", "c"])
        cluster.campaign("a")
        cluster.propose("b", "from-b", id: 1)
        cluster.deliverAll()
        cluster.tickAll(1)
        XCTAssertEqual(cluster.outcome("b", 1), .committed(index: 2))
        XCTAssertEqual(cluster.commands("c"), ["from-b"])
        XCTAssertNil(cluster.outcome("a", 1), "the leader does not report other nodes' proposals")
    }

    func testProposalWithoutAKnownLeaderFailsAtOnce() throws {
        var raft = try makeRaft("a")
        let update = raft.step(.propose(data: [1], id: ProposalID(5)))
        XCTAssertEqual(update.outcomes, [ProposalResult(id: ProposalID(5), outcome: .failed(.noLeader))])
        XCTAssertTrue(ProposalFailure.noLeader.isDefinite)
    }

    func testForwardedProposalTimesOutWhenTheLeaderNeverAnswers() throws {
        var raft = try makeRaft("b") { $0.proposalTimeoutTicks = 3 }
        _ = raft.deliver("a", term: 1, .heartbeat(commit: 0))
        let update = raft.step(.propose(data: [1], id: ProposalID(1)))
        XCTAssertEqual(update.messages.first?.kind, .propose(id: ProposalID(1), data: [1]))
        var outcomes: [ProposalResult] = []
        for _ in 0..<3 {
            _ = raft.deliver("a", .heartbeat(commit: 0))
            outcomes += raft.step(.tick).outcomes
        }
        XCTAssertEqual(outcomes, [ProposalResult(id: ProposalID(1), outcome: .failed(.timedOut))])
        XCTAssertFalse(ProposalFailure.timedOut.isDefinite)
    }

    func testForwardedProposalFailsAsSoonAsAnotherLeaderIsFollowed() throws {
        var raft = try makeRaft("b") { $0.proposalTimeoutTicks = 100 }
        _ = raft.deliver("a", term: 1, .heartbeat(commit: 0))
        _ = raft.step(.propose(data: [1], id: ProposalID(1)))
        // "a" dies unanswered; "c" wins the next term: no waiting for the timeout.
        let update = raft.deliver("c", term: 2, .heartbeat(commit: 0))
        XCTAssertEqual(raft.leader, "c")
        XCTAssertEqual(update.outcomes, [ProposalResult(id: ProposalID(1), outcome: .failed(.leadershipLost))])
        var later: [ProposalResult] = []
        for _ in 0..<120 {
            _ = raft.deliver("c", .heartbeat(commit: 0))
            later += raft.step(.tick).outcomes
        }
        XCTAssertEqual(later, [], "exactly one outcome per proposal")
    }

    func testLeaderProposalThatOutlivesItsLeadershipFailsAsLeadershipLost() throws {
        var raft = try makeRaft("a") { $0.proposalTimeoutTicks = 30 }
        raft.forceElection(voters: ["b"])
        _ = raft.step(.propose(data: [1], id: ProposalID(1)))
        _ = raft.deliver("b", term: raft.term + 1, .heartbeat(commit: 0))
        XCTAssertEqual(raft.role, .follower)
        var outcomes: [ProposalResult] = []
        for _ in 0..<40 { outcomes += raft.step(.tick).outcomes }
        XCTAssertEqual(outcomes, [ProposalResult(id: ProposalID(1), outcome: .failed(.leadershipLost))])
    }

    func testProposalIsSupersededWhenAnotherEntryCommitsAtItsIndex() throws {
        var cluster = try RaftTestCluster(["a", "b", "c"])
        cluster.campaign("a")
        cluster.isolate("a")
        cluster.propose("a", "doomed", id: 1)
        cluster.tickAll(40)
        let leader = try XCTUnwrap(cluster.leaders.first { $0 != "a" })
        cluster.propose(leader, "winner", id: 2)
        cluster.deliverAll()
        cluster.heal()
        cluster.tickAll(5)
        XCTAssertEqual(cluster.outcome("a", 1), .failed(.superseded))
        XCTAssertEqual(cluster.commands("a"), ["winner"])
        XCTAssertTrue(ProposalFailure.superseded.isDefinite)
    }

    func testForwardedProposalAnsweredAfterItWasAppliedStillGetsItsOutcome() throws {
        let recovered = RaftRecoveredState(hardState: HardState(term: 1, commit: 3), entries: entries([1, 1, 1]))
        var raft = try makeRaft("b", recovered: recovered)
        _ = raft.step(.tick)
        _ = raft.deliver("a", term: 1, .heartbeat(commit: 3))
        _ = raft.step(.propose(data: [1], id: ProposalID(1)))
        _ = raft.step(.propose(data: [2], id: ProposalID(2)))
        let first = raft.deliver("a", .proposeResponse(id: ProposalID(1), result: .appended(index: 3, term: 1)))
        XCTAssertEqual(first.outcomes, [ProposalResult(id: ProposalID(1), outcome: .committed(index: 3))])
        let second = raft.deliver("a", .proposeResponse(id: ProposalID(2), result: .appended(index: 2, term: 2)))
        XCTAssertEqual(second.outcomes, [ProposalResult(id: ProposalID(2), outcome: .failed(.superseded))])
        let duplicate = raft.deliver("a", .proposeResponse(id: ProposalID(2), result: .appended(index: 2, term: 2)))
        XCTAssertTrue(duplicate.outcomes.isEmpty, "one outcome per proposal")
    }

    func testNonLeaderRefusesAForwardedProposal() throws {
        var raft = try makeRaft("a")
        let update = raft.deliver("b", .propose(id: ProposalID(3), data: [1]))
        XCTAssertEqual(update.messages.first?.kind, .proposeResponse(id: ProposalID(3), result: .failed(.noLeader)))
        XCTAssertEqual(raft.log.lastIndex, 0)
    }
}
