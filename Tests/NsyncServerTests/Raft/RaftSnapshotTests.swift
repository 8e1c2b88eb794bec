import XCTest
@testable import NsyncServer

/// Raft paper §7 (log compaction, InstallSnapshot) and start-up from storage.
final class RaftSnapshotTests: XCTestCase {
    /// A cluster whose state machine snapshot is the concatenated commands.
    private func snapshotOf(_ cluster: RaftTestCluster, _ name: NodeName) -> RaftSnapshot {
        let raft = cluster[name]
        let applied = cluster.applied[name]!
        let data = applied.filter { $0.kind == .command }.flatMap(\.data)
        let last = applied.last!
        return RaftSnapshot(metadata: SnapshotMetadata(index: last.index, term: last.term, members: raft.members), data: data)
    }

    func testSnapshotIsRequestedAtTheThresholdAndTheLogIsCompactedBehindIt() throws {
        var cluster = try RaftTestCluster(["a", "b", "c"]) {
            $0.snapshotThresholdEntries = 10
            $0.compactionTrailingEntries = 3
        }
        cluster.campaign("a")
        for i in 1...8 { cluster.propose("a", "c\(i)", id: UInt64(i)) }
        cluster.deliverAll()
        XCTAssertNil(cluster.snapshotsWanted["a"], "9 applied entries are below the threshold")
        cluster.propose("a", "c9", id: 9)
        cluster.deliverAll()
        XCTAssertEqual(cluster.snapshotsWanted["a"], 1)
        let snapshot = snapshotOf(cluster, "a")
        XCTAssertEqual(snapshot.metadata.index, 10)
        let update = cluster.step("a", .snapshotCreated(snapshot))
        XCTAssertEqual(update.compactedThrough, 7, "three entries stay behind the snapshot for slow followers")
        XCTAssertEqual(cluster["a"].log.firstIndex, 8)
        XCTAssertEqual(cluster["a"].snapshotIndex, 10)
        // A stale or foreign snapshot is ignored.
        var stale = snapshot
        stale.metadata.index = 5
        XCTAssertNil(cluster.step("a", .snapshotCreated(stale)).compactedThrough)
    }

    func testLaggingFollowerReceivesTheSnapshotInChunksAndCatchesUp() throws {
        var cluster = try RaftTestCluster(["a", "b", "c"]) {
            $0.snapshotThresholdEntries = 5
            $0.compactionTrailingEntries = 0
            $0.snapshotChunkBytes = 4
        }
        cluster.campaign("a")
        cluster.isolate("c")
        for i in 1...12 { cluster.propose("a", "cmd\(i)", id: UInt64(i)) }
        cluster.deliverAll()
        let snapshot = snapshotOf(cluster, "a")
        cluster.step("a", .snapshotCreated(snapshot))
        XCTAssertGreaterThan(cluster["a"].log.firstIndex, 2, "c's next entry was compacted away")
        cluster.heal()
        var chunks = 0
        var installed: RaftSnapshot?
        for _ in 0..<20 {
            cluster.step("a", .tick)
            while !cluster.mailbox.isEmpty {
                let message = cluster.mailbox.removeFirst()
                if case let .installSnapshot(chunk) = message.kind {
                    chunks += 1
                    XCTAssertLessThanOrEqual(chunk.data.count, 4)
                }
                let update = cluster.step(message.to, .message(message))
                if message.to == "c", let snap = update.snapshot { installed = snap }
            }
            if installed != nil { break }
        }
        let snap = try XCTUnwrap(installed)
        XCTAssertEqual(snap, snapshot, "the reassembled snapshot is byte-identical")
        XCTAssertEqual(chunks, (snapshot.data.count + 3) / 4)
        XCTAssertEqual(cluster["c"].commitIndex, snapshot.metadata.index)
        cluster.propose("a", "after", id: 100)
        cluster.deliverAll()
        cluster.tickAll(2)
        XCTAssertEqual(cluster.commands("c"), ["after"], "entries after the snapshot replicate from the log")
        XCTAssertEqual(cluster["c"].log.lastIndex, cluster["a"].log.lastIndex)
    }

    func testInstalledSnapshotReplacesADivergentLog() throws {
        let recovered = RaftRecoveredState(hardState: HardState(term: 2, commit: 1), entries: entries([1, 2, 2]))
        var raft = try makeRaft("c", recovered: recovered)
        let metadata = SnapshotMetadata(index: 10, term: 3, members: ["a", "b", "c"])
        var update = raft.deliver("a", term: 3, .installSnapshot(SnapshotChunk(metadata: metadata, offset: 0, data: [1, 2], done: false)))
        XCTAssertEqual(update.messages.first?.kind, .installSnapshotResponse(index: 10, term: 3, nextOffset: 2))
        // A chunk at the wrong offset is answered with the offset we need.
        update = raft.deliver("a", term: 3, .installSnapshot(SnapshotChunk(metadata: metadata, offset: 5, data: [9], done: true)))
        XCTAssertEqual(update.messages.first?.kind, .installSnapshotResponse(index: 10, term: 3, nextOffset: 2))
        update = raft.deliver("a", term: 3, .installSnapshot(SnapshotChunk(metadata: metadata, offset: 2, data: [3], done: true)))
        XCTAssertEqual(update.snapshot, RaftSnapshot(metadata: metadata, data: [1, 2, 3]))
        XCTAssertEqual(update.messages.first?.kind, .appendResponse(.accepted(matchIndex: 10)))
        XCTAssertEqual(update.hardState?.commit, 10)
        XCTAssertEqual(update.persistedEvent.map { "\($0)" }, "\(RaftEvent.persisted(upTo: 10, term: 3))")
        XCTAssertEqual(raft.log.lastIndex, 10)
        XCTAssertEqual(raft.appliedIndex, 10)
        XCTAssertTrue(update.committedEntries.isEmpty)
    }

    func testRestartFromSnapshotAndEntriesResumesAndReappliesCommittedEntries() throws {
        let snapshot = RaftSnapshot(metadata: SnapshotMetadata(index: 5, term: 2, members: ["a", "b", "c"]), data: [7])
        let recovered = RaftRecoveredState(hardState: HardState(term: 3, vote: "b", commit: 7),
                                           snapshot: snapshot, entries: entries([1, 2, 2, 3, 3, 3], from: 3))
        var raft = try makeRaft("a", recovered: recovered)
        XCTAssertEqual(raft.log.firstIndex, 6, "entries at or below the snapshot are dropped")
        XCTAssertEqual(raft.log.lastIndex, 8)
        XCTAssertEqual(raft.term, 3)
        XCTAssertEqual(raft.vote, "b")
        let update = raft.step(.tick)
        XCTAssertEqual(update.committedEntries.map(\.index), [6, 7], "committed entries after the snapshot are applied again")
        XCTAssertNil(update.hardState, "nothing changed that storage does not already hold")
    }

    func testRecoveryRefusesInconsistentStorage() throws {
        let snapshot = RaftSnapshot(metadata: SnapshotMetadata(index: 5, term: 2), data: [])
        XCTAssertThrowsError(try makeRaft(recovered: RaftRecoveredState(snapshot: snapshot, entries: entries([2], from: 7)))) {
            XCTAssertEqual($0 as? RaftRecoveryError, .gapAfterSnapshot(snapshotIndex: 5, firstEntry: 7))
        }
        XCTAssertThrowsError(try makeRaft(recovered: RaftRecoveredState(hardState: HardState(term: 1, commit: 3), entries: entries([1])))) {
            XCTAssertEqual($0 as? RaftRecoveryError, .commitBeyondLog(commit: 3, lastIndex: 1))
            XCTAssertTrue("\($0)".contains("move it aside"))
        }
        var broken = entries([1, 1, 1])
        broken[2].index = 9
        XCTAssertThrowsError(try makeRaft(recovered: RaftRecoveredState(hardState: HardState(term: 1), entries: broken))) {
            XCTAssertEqual($0 as? RaftRecoveryError, .entriesNotContiguous(after: 2, found: 9))
        }
    }

    func testRecoveryAdoptsTheLogTermWhenTheHardStateWasLostInATornTail() throws {
        let raft = try makeRaft(recovered: RaftRecoveredState(hardState: HardState(term: 1, vote: "b"), entries: entries([1, 2])))
        XCTAssertEqual(raft.term, 2)
        XCTAssertNil(raft.vote, "no vote of term 2 ever left this node")
    }
}
