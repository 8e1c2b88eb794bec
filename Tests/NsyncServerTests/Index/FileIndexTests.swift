import XCTest
@testable import NsyncServer

/// The rules of the replicated index, one behaviour per test.
final class FileIndexTests: XCTestCase {
    let hashA = [UInt8](repeating: 0xAA, count: 32)
    let hashB = [UInt8](repeating: 0xBB, count: 32)
    var index = FileIndex()

    func file(_ path: String, _ hash: [UInt8], base: UInt64, size: UInt64 = 10, mode: UInt32 = 0o644, mtime: Int64 = 1) -> IndexChange {
        .put(.file(path, size: size, mode: mode, mtime: mtime, hash: hash, base: base))
    }

    func delete(_ path: String, base: UInt64) -> IndexChange {
        .put(.deletion(path, mtime: 99, base: base))
    }

    func directory(_ path: String, mode: UInt32, base: UInt64, mtime: Int64 = 1) -> IndexChange {
        .put(.directory(path, mode: mode, mtime: mtime, base: base))
    }

    @discardableResult
    func apply(_ origin: NodeName, at entry: UInt64, _ changes: IndexChange...) -> [ChangeOutcome] {
        let outcomes = index.apply(IndexCommand(origin: origin, changes: changes), at: entry)
        XCTAssertEqual(outcomes.count, changes.count)
        return outcomes
    }

    // MARK: puts

    func testNewFileIsAcceptedWithTheEntryIndexAsVersionAndItsOriginAsSoleHolder() throws {
        XCTAssertEqual(apply("n1", at: 5, file("a.txt", hashA, base: 0)), [.accepted(version: 5)])
        let record = try XCTUnwrap(index.record(at: "a.txt"))
        XCTAssertEqual(record, FileRecord(path: "a.txt", version: 5, kind: .file, size: 10, mode: 0o644, mtime: 1,
                                          hash: hashA, origin: "n1", holders: ["n1"]))
        XCTAssertEqual(index.count, 1)
        XCTAssertEqual(index.appliedIndex, 5)
    }

    func testEditWithTheCurrentBaseReplacesTheRecordAndResetsHolders() throws {
        apply("n1", at: 5, file("a", hashA, base: 0))
        apply("n2", at: 6, .hold(path: "a", version: 5))
        XCTAssertEqual(apply("n2", at: 7, file("a", hashB, base: 5, size: 20)), [.accepted(version: 7)])
        let record = try XCTUnwrap(index.record(at: "a"))
        XCTAssertEqual(record.hash, hashB)
        XCTAssertEqual(record.size, 20)
        XCTAssertEqual(record.origin, "n2")
        XCTAssertEqual(record.holders, ["n2"])
    }

    func testConcurrentPutsOnOnePathTheSecondIsRejectedWithTheWinner() throws {
        apply("n1", at: 5, file("a", hashA, base: 0))
        // Both nodes edited version 5; n2's edit committed first.
        XCTAssertEqual(apply("n2", at: 6, file("a", hashB, base: 5)), [.accepted(version: 6)])
        let winner = try XCTUnwrap(index.record(at: "a"))
        XCTAssertEqual(apply("n3", at: 7, file("a", [UInt8](repeating: 0xCC, count: 32), base: 5)), [.rejected(current: winner)])
        XCTAssertEqual(index.record(at: "a"), winner)
    }

    func testTwoNodesCreatingTheSameNameWithDifferentContentConflict() throws {
        apply("n1", at: 3, file("new", hashA, base: 0))
        let winner = try XCTUnwrap(index.record(at: "new"))
        XCTAssertEqual(apply("n2", at: 4, file("new", hashB, base: 0)), [.rejected(current: winner)])
    }

    func testIdenticalContentFromTwoJoiningNodesIsNotAConflict() throws {
        apply("n1", at: 3, file("shared.bin", hashA, base: 0, mtime: 1_000))
        // n2 scanned the same bytes (copied at another time) before it saw n1's record.
        XCTAssertEqual(apply("n2", at: 4, file("shared.bin", hashA, base: 0, mtime: 2_000)), [.alreadyCurrent(version: 3)])
        let record = try XCTUnwrap(index.record(at: "shared.bin"))
        XCTAssertEqual(record.version, 3)
        XCTAssertEqual(record.origin, "n1")
        XCTAssertEqual(record.holders, ["n1", "n2"])
    }

    func testSameBytesWithAnotherModeAndStaleBaseIsRejected() throws {
        apply("n1", at: 3, file("s", hashA, base: 0, mode: 0o644))
        let current = try XCTUnwrap(index.record(at: "s"))
        XCTAssertEqual(apply("n2", at: 4, file("s", hashA, base: 0, mode: 0o600)), [.rejected(current: current)])
    }

    func testRepeatedProposalOfTheCommittedStateIsAlreadyCurrent() {
        apply("n1", at: 3, file("r", hashA, base: 0))
        // A retry after a leader change: the first copy already committed.
        XCTAssertEqual(apply("n1", at: 4, file("r", hashA, base: 0)), [.alreadyCurrent(version: 3)])
        XCTAssertEqual(index.record(at: "r")?.version, 3)
    }

    func testTouchWithTheCurrentBaseIsANewVersion() {
        apply("n1", at: 3, file("t", hashA, base: 0, mtime: 1))
        XCTAssertEqual(apply("n1", at: 4, file("t", hashA, base: 3, mtime: 1)), [.alreadyCurrent(version: 3)])
        XCTAssertEqual(apply("n2", at: 5, file("t", hashA, base: 3, mtime: 2)), [.accepted(version: 5)])
        XCTAssertEqual(index.record(at: "t")?.mtime, 2)
    }

    // MARK: deletions

    func testDeleteWithTheCurrentBaseLeavesATombstoneHeldByTheDeleterThatRemembersTheDeletedHash() throws {
        apply("n1", at: 3, file("d", hashA, base: 0))
        XCTAssertEqual(apply("n2", at: 4, delete("d", base: 3)), [.accepted(version: 4)])
        let tombstone = try XCTUnwrap(index.record(at: "d"))
        // The hash of what was deleted lets a node without a manifest tell a stale copy from an edit.
        XCTAssertEqual(tombstone, FileRecord(path: "d", version: 4, kind: .deleted, mtime: 99, hash: hashA, origin: "n2", holders: ["n2"]))
    }

    func testTombstoneWithADeletedHashSurvivesASnapshot() throws {
        apply("n1", at: 3, file("d", hashA, base: 0))
        apply("n2", at: 4, delete("d", base: 3))
        let restored = try FileIndex(snapshotData: index.snapshotData())
        XCTAssertEqual(restored.record(at: "d")?.hash, hashA)
    }

    func testEditBeatsConcurrentDelete() throws {
        apply("n1", at: 3, file("e", hashA, base: 0))
        apply("n1", at: 4, delete("e", base: 3))
        // n2 edited version 3 while n1 deleted it: nothing a user wrote is lost.
        XCTAssertEqual(apply("n2", at: 5, file("e", hashB, base: 3)), [.accepted(version: 5)])
        XCTAssertEqual(index.record(at: "e")?.kind, .file)
        XCTAssertEqual(index.record(at: "e")?.hash, hashB)
    }

    func testDeleteLosesToAConcurrentEdit() throws {
        apply("n1", at: 3, file("e", hashA, base: 0))
        apply("n2", at: 4, file("e", hashB, base: 3))
        let edited = try XCTUnwrap(index.record(at: "e"))
        XCTAssertEqual(apply("n1", at: 5, delete("e", base: 3)), [.rejected(current: edited)])
        XCTAssertEqual(index.record(at: "e"), edited)
    }

    func testReCreatedNameAfterDeleteIsAccepted() throws {
        apply("n1", at: 3, file("again", hashA, base: 0))
        apply("n1", at: 4, delete("again", base: 3))
        XCTAssertEqual(apply("n2", at: 5, file("again", hashB, base: 4)), [.accepted(version: 5)])
        XCTAssertEqual(index.record(at: "again")?.holders, ["n2"])
        // Even after the tombstone is forgotten, and with a stale base.
        apply("n2", at: 6, delete("again", base: 5))
        apply("n1", at: 7, .hold(path: "again", version: 6))
        apply("n1", at: 8, .forget(path: "again", version: 6))
        XCTAssertNil(index.record(at: "again"))
        XCTAssertEqual(apply("n3", at: 9, file("again", hashA, base: 6)), [.accepted(version: 9)])
    }

    func testDeletingAnAbsentPathIsAlreadyCurrentAndCreatesNothing() {
        XCTAssertEqual(apply("n1", at: 3, delete("ghost", base: 0)), [.alreadyCurrent(version: 0)])
        XCTAssertEqual(apply("n1", at: 4, delete("ghost", base: 2)), [.alreadyCurrent(version: 0)])
        XCTAssertEqual(index.count, 0)
    }

    func testDeletingADeletedPathIsAlreadyCurrentAndTheProposerHoldsTheTombstone() throws {
        apply("n1", at: 3, file("d", hashA, base: 0))
        apply("n1", at: 4, delete("d", base: 3))
        XCTAssertEqual(apply("n2", at: 5, delete("d", base: 3)), [.alreadyCurrent(version: 4)])
        XCTAssertEqual(index.record(at: "d")?.holders, ["n1", "n2"])
        XCTAssertEqual(index.record(at: "d")?.version, 4)
    }

    // MARK: directories and symlinks

    func testDirectoryMetadataChangesMergeWithoutConflict() throws {
        apply("n1", at: 3, directory("dir", mode: 0o755, base: 0))
        XCTAssertEqual(apply("n2", at: 4, directory("dir", mode: 0o700, base: 0, mtime: 5)), [.accepted(version: 4)])
        XCTAssertEqual(index.record(at: "dir")?.mode, 0o700)
        XCTAssertEqual(apply("n3", at: 5, directory("dir", mode: 0o700, base: 3, mtime: 9)), [.alreadyCurrent(version: 4)])
    }

    func testFileReplacingADirectoryWithAStaleBaseIsRejected() throws {
        apply("n1", at: 3, directory("x", mode: 0o755, base: 0))
        let current = try XCTUnwrap(index.record(at: "x"))
        XCTAssertEqual(apply("n2", at: 4, file("x", hashA, base: 0)), [.rejected(current: current)])
        XCTAssertEqual(apply("n2", at: 5, file("x", hashA, base: 3)), [.accepted(version: 5)])
    }

    func testSymlinkTargetsCompareByBytes() throws {
        apply("n1", at: 3, .put(.symlink("link", target: "caf\u{E9}", mtime: 1, base: 0)))
        let current = try XCTUnwrap(index.record(at: "link"))
        // Canonically equivalent but different bytes: a different link.
        XCTAssertEqual(apply("n2", at: 4, .put(.symlink("link", target: "cafe\u{301}", mtime: 1, base: 0))), [.rejected(current: current)])
        XCTAssertEqual(apply("n2", at: 5, .put(.symlink("link", target: "caf\u{E9}", mtime: 7, base: 0))), [.alreadyCurrent(version: 3)])
    }

    func testNonFileSizesAreStoredAsZero() {
        apply("n1", at: 3, .put(PutChange(path: "dir", kind: .directory, size: 4096, mode: 0o755, baseVersion: 0)))
        XCTAssertEqual(index.record(at: "dir")?.size, 0)
    }

    // MARK: hold and forget

    func testHoldAddsTheOriginOnlyForTheCurrentVersion() {
        apply("n1", at: 3, file("h", hashA, base: 0))
        XCTAssertEqual(apply("n2", at: 4, .hold(path: "h", version: 3)), [.accepted(version: 3)])
        XCTAssertEqual(index.record(at: "h")?.holders, ["n1", "n2"])
        apply("n1", at: 5, file("h", hashB, base: 3))
        XCTAssertEqual(apply("n3", at: 6, .hold(path: "h", version: 3)), [.stale])
        XCTAssertEqual(apply("n3", at: 7, .hold(path: "nothing", version: 0)), [.stale])
        XCTAssertEqual(index.record(at: "h")?.holders, ["n1"])
    }

    func testForgetRemovesOnlyATombstoneAtTheNamedVersion() {
        apply("n1", at: 3, file("f", hashA, base: 0))
        XCTAssertEqual(apply("n1", at: 4, .forget(path: "f", version: 3)), [.stale], "a live record is never forgotten")
        apply("n1", at: 5, delete("f", base: 3))
        XCTAssertEqual(apply("n1", at: 6, .forget(path: "f", version: 3)), [.stale])
        XCTAssertEqual(index.count, 1)
        XCTAssertEqual(apply("n1", at: 7, .forget(path: "f", version: 5)), [.accepted(version: 5)])
        XCTAssertNil(index.record(at: "f"))
        XCTAssertEqual(index.count, 0)
        XCTAssertEqual(Array(index).count, 0)
    }

    // MARK: invalid changes

    func testInvalidChangesAtApplyLeaveTheIndexUntouched() throws {
        apply("n1", at: 3, file("ok", hashA, base: 0))
        let before = index
        let outcomes = apply("n1", at: 4,
                             file("../escape", hashA, base: 0),
                             file(".nsync/raft.log", hashA, base: 0),
                             file("short-hash", [1, 2, 3], base: 0),
                             file("setuid-plus", hashA, base: 0, mode: 0o104755),
                             .put(.symlink("empty-link", target: "", mtime: 0, base: 0)),
                             .put(PutChange(path: "dir", kind: .directory, hash: hashA, baseVersion: 0)),
                             .hold(path: "/abs", version: 3),
                             .forget(path: "a//b", version: 3))
        for outcome in outcomes {
            guard case .invalid = outcome else { return XCTFail("expected invalid, got \(outcome)") }
        }
        var expected = before
        _ = expected.apply(IndexCommand(origin: "n1", changes: []), at: 4)
        XCTAssertEqual(index, expected)
    }

    func testCommandFromAnInvalidOriginChangesNothing() {
        let outcomes = apply("bad name", at: 3, file("a", hashA, base: 0))
        guard case .invalid(let reason) = outcomes.first else { return XCTFail("\(outcomes)") }
        XCTAssertTrue(reason.contains("origin"), reason)
        XCTAssertEqual(index.count, 0)
    }

    // MARK: batches, order, queries

    func testLaterChangesInACommandSeeEarlierOnes() {
        let outcomes = apply("n1", at: 9,
                             file("a", hashA, base: 0),
                             file("a", hashB, base: 9),      // based on the version just created
                             file("a", hashA, base: 0),      // stale now, other content
                             .hold(path: "a", version: 9),
                             delete("a", base: 9),
                             .forget(path: "a", version: 9))
        XCTAssertEqual(outcomes.count, 6)
        XCTAssertEqual(outcomes[0], .accepted(version: 9))
        XCTAssertEqual(outcomes[1], .accepted(version: 9))
        guard case .rejected = outcomes[2] else { return XCTFail("\(outcomes[2])") }
        XCTAssertEqual(outcomes[3], .accepted(version: 9))
        XCTAssertEqual(outcomes[4], .accepted(version: 9))
        XCTAssertEqual(outcomes[5], .accepted(version: 9))
        XCTAssertEqual(index.count, 0)
        XCTAssertTrue(Array(index).isEmpty)
    }

    func testIterationIsInByteOrderAndKeepsCanonicallyEquivalentNamesApart() {
        let precomposed = "caf\u{E9}"
        let decomposed = "cafe\u{301}"
        apply("n1", at: 3, file("b", hashA, base: 0), file(precomposed, hashA, base: 0),
              file(decomposed, hashB, base: 0), file("a/b", hashA, base: 0), directory("a", mode: 0o755, base: 0),
              file("a-c", hashA, base: 0), file("B", hashA, base: 0))
        XCTAssertEqual(index.count, 7)
        XCTAssertEqual(index.record(at: precomposed)?.hash, hashA)
        XCTAssertEqual(index.record(at: decomposed)?.hash, hashB)
        let paths = Array(index).map { Array($0.path.utf8) }
        XCTAssertEqual(paths, [Array("B".utf8), Array("a".utf8), Array("a-c".utf8), Array("a/b".utf8),
                               Array("b".utf8), Array(decomposed.utf8), Array(precomposed.utf8)])
    }

    func testTombstonesHeldByAllMembersAreReadyToForget() {
        apply("n1", at: 3, file("x", hashA, base: 0), file("y", hashA, base: 0), file("z", hashA, base: 0))
        apply("n1", at: 4, delete("x", base: 3), delete("y", base: 3))
        apply("n2", at: 5, .hold(path: "x", version: 4), .hold(path: "y", version: 4), .hold(path: "z", version: 3))
        apply("n3", at: 6, .hold(path: "x", version: 4), .hold(path: "z", version: 3))
        let ready = index.tombstonesHeldByAll(members: ["n1", "n2", "n3"])
        XCTAssertEqual(ready.map(\.path), ["x"])
        XCTAssertEqual(ready.map(\.version), [4])
        XCTAssertEqual(index.tombstonesHeldByAll(members: ["n1", "n2"]).map(\.path), ["x", "y"])
        XCTAssertTrue(index.tombstonesHeldByAll(members: []).isEmpty)
        // A restored snapshot finds them too; a name made again, or forgotten, is no tombstone.
        let restored = try? FileIndex(snapshotData: index.snapshotData())
        XCTAssertEqual(restored?.tombstonesHeldByAll(members: ["n1", "n2"]).map(\.path), ["x", "y"])
        apply("n1", at: 7, file("y", hashA, base: 4), .forget(path: "x", version: 4))
        XCTAssertTrue(index.tombstonesHeldByAll(members: ["n1", "n2"]).isEmpty)
        XCTAssertTrue(index.tombstones.isEmpty)
    }

    func testRecordsNotHeldByANodeAreWhatItMustFetchInPathOrder() {
        apply("n1", at: 3, file("z", hashA, base: 0), directory("d", mode: 0o755, base: 0), file("d/f", hashA, base: 0))
        apply("n2", at: 4, .hold(path: "z", version: 3))
        apply("n1", at: 5, delete("z", base: 3))
        XCTAssertEqual(index.records(notHeldBy: "n2").map(\.path), ["d", "d/f", "z"])
        XCTAssertEqual(index.records(notHeldBy: "n1").map(\.path), [])
    }

    func testLargeBatchAppliesQuicklyAndKeepsPathOrder() {
        let count = 100_000
        let changes = (0..<count).map { file("dir\($0 % 97)/file-\($0)", hashA, base: 0) }
        let started = Date()
        let outcomes = index.apply(IndexCommand(origin: "n1", changes: changes), at: 2)
        let seconds = Date().timeIntervalSince(started)
        print("FileIndex: applied \(count) puts in one command in \(String(format: "%.2f", seconds)) s")
        XCTAssertEqual(outcomes.filter { $0 == .accepted(version: 2) }.count, count)
        XCTAssertEqual(index.count, count)
        let paths = Array(index).map(\.path)
        XCTAssertTrue(zip(paths, paths.dropFirst()).allSatisfy { PathKey($0) < PathKey($1) })
    }
}
