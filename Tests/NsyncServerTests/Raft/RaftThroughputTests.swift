import Foundation
import XCTest
import NsyncServer

/// How many small commands per second the core itself commits (a 3-node
/// cluster in memory: persistence completes at once, messages are delivered
/// in batches like one loop iteration of the driver). The real budget is
/// 20,000 commits/s through the driver; the core must be a small part of it.
/// Uses the public API only, so it also builds in release with -enable-testing.
final class RaftThroughputTests: XCTestCase {
    func testCoreCommitsBatchesOfSmallCommandsQuickly() throws {
        try measureCommits(total: 100_000, batch: 200)
    }

    /// The driver steps each proposal on its own as it arrives.
    func testCoreCommitsOneProposalPerStepQuickly() throws {
        try measureCommits(total: 20_000, batch: 1)
    }

    private func measureCommits(total defaultTotal: Int, batch: Int) throws {
        let names = ["a", "b", "c"]
        var nodes: [NodeName: Raft] = [:]
        for (i, name) in names.enumerated() {
            var config = RaftConfig(name: name, peers: names)
            config.randomSeed = UInt64(i + 1)
            config.snapshotThresholdEntries = 20_000
            config.compactionTrailingEntries = 1_000
            nodes[name] = try Raft(config: config)
        }
        var inbox: [NodeName: [RaftEvent]] = ["a": [], "b": [], "c": []]
        var committed = 0
        var pendingOutcomes = 0

        func absorb(_ name: NodeName, _ update: RaftUpdate) {
            if name == "a" {
                committed += update.committedEntries.count
                pendingOutcomes -= update.outcomes.count
            }
            if let ack = update.persistedEvent { inbox[name]!.append(ack) }
            for message in update.messages { inbox[message.to]!.append(.message(message)) }
            if update.wantsSnapshot {
                // The state machine here is empty: a snapshot is just a position.
                let raft = nodes[name]!
                let snapshot = RaftSnapshot(metadata: SnapshotMetadata(index: raft.appliedIndex, term: raft.term), data: [])
                inbox[name]!.append(.snapshotCreated(snapshot))
            }
        }

        // Elect "a".
        var ticks = 0
        while nodes["a"]!.role != .leader && ticks < 1_000 {
            absorb("a", nodes["a"]!.step(.tick))
            for name in names where !inbox[name]!.isEmpty {
                let events = inbox[name]!
                inbox[name] = []
                absorb(name, nodes[name]!.step(events))
            }
            ticks += 1
        }
        XCTAssertEqual(nodes["a"]!.role, .leader)

        let total = Int(ProcessInfo.processInfo.environment["NSYNC_RAFT_BENCH_COMMANDS"] ?? "") ?? defaultTotal
        let command = Array(repeating: UInt8(7), count: 64)
        var proposed = 0
        let started = Date()
        var rounds = 0
        while (committed < total || pendingOutcomes > 0) && rounds < 10 * total {
            rounds += 1
            if proposed < total {
                if batch == 1 {
                    // One step per proposal, several proposals per loop iteration.
                    for _ in 0..<50 {
                        absorb("a", nodes["a"]!.step(.propose(data: command, id: ProposalID(UInt64(proposed)))))
                        proposed += 1
                        pendingOutcomes += 1
                    }
                } else {
                    let events = (0..<batch).map { RaftEvent.propose(data: command, id: ProposalID(UInt64(proposed + $0))) }
                    proposed += batch
                    pendingOutcomes += batch
                    absorb("a", nodes["a"]!.step(events))
                }
            }
            for name in names where !inbox[name]!.isEmpty {
                let events = inbox[name]!
                inbox[name] = []
                absorb(name, nodes[name]!.step(events))
            }
        }
        let elapsed = Date().timeIntervalSince(started)
        let rate = Double(committed) / elapsed
        print("Raft core: \(committed) commands committed in \(String(format: "%.2f", elapsed)) s = \(Int(rate)) commits/s (3 nodes, \(batch == 1 ? "one proposal per step" : "\(batch) proposals per step"), 64-byte commands)")
        XCTAssertEqual(pendingOutcomes, 0, "every proposal got its outcome")
        XCTAssertGreaterThanOrEqual(committed, total)
        // Speed is reported (nsyncd bench raft measures it), never asserted: tests do not time.
        print("core throughput: \(Int(rate)) commits/s")
    }
}
