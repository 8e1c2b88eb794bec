import XCTest
@testable import NsyncServer

/// The reconciler's answers to single events, one behaviour per test: this
/// node is "n1"; "n2" is a remote node whose commands are applied directly.
final class ReconcilerTests: XCTestCase {
    var reconciler = Reconciler(node: "n1")
    var index = FileIndex()
    var nextEntry: UInt64 = 1

    func hash(_ byte: UInt8) -> [UInt8] { [UInt8](repeating: byte, count: 32) }

    func file(_ byte: UInt8, size: UInt64 = 10, mode: UInt32 = 0o644, mtime: Int64 = 100, inode: UInt64 = 1) -> LocalFile {
        LocalFile(kind: .file, size: size, mode: mode, mtime: mtime, hash: hash(byte), inode: inode)
    }

    func directory(mode: UInt32 = 0o755, mtime: Int64 = 100, inode: UInt64 = 50) -> LocalFile {
        LocalFile(kind: .directory, mode: mode, mtime: mtime, inode: inode)
    }

    func put(_ path: String, _ local: LocalFile?, base: UInt64) -> IndexChange {
        guard let local else { return .put(.deletion(path, mtime: 0, base: base)) }
        return .put(PutChange(path: path, kind: local.kind, size: local.size, mode: local.mode, mtime: local.mtime,
                              hash: local.hash, target: local.target, baseVersion: base))
    }

    /// Commits `changes` from `origin` as the next entry and returns what n1's reconciler asks for.
    @discardableResult
    func commit(_ origin: NodeName, _ changes: [IndexChange]) -> (outcomes: [ChangeOutcome], actions: [SyncAction]) {
        let command = IndexCommand(origin: origin, changes: changes)
        let outcomes = index.apply(command, at: nextEntry)
        nextEntry += 1
        return (outcomes, reconciler.applied(command, outcomes: outcomes, index: index))
    }

    /// Commits n1's outbox as one command.
    @discardableResult
    func commitOutbox() -> (outcomes: [ChangeOutcome], actions: [SyncAction]) {
        commit("n1", reconciler.takeOutbox())
    }

    /// Makes n1 hold `local` at `path` as the committed version (origin n2, fetched and installed by n1).
    @discardableResult
    func installRemote(_ path: String, _ local: LocalFile) -> UInt64 {
        let version = nextEntry
        let (_, actions) = commit("n2", [put(path, local, base: index.record(at: path)?.version ?? 0)])
        XCTAssertEqual(actions.count, 1, "\(actions)")
        XCTAssertTrue(reconciler.installed(path, version: version, local: local, index: index).isEmpty)
        commitOutbox()  // the hold
        XCTAssertEqual(index.record(at: path)?.holders, ["n1", "n2"])
        XCTAssertFalse(reconciler.hasPendingWork)
        return version
    }

    // MARK: local changes

    func testNewLocalFileIsProposedWithBaseZero() {
        XCTAssertEqual(reconciler.observed("a", file(1), index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [put("a", file(1), base: 0)])
        XCTAssertEqual(reconciler.pendingPutCount, 1)
    }

    func testEditIsProposedWithTheBaseOfTheInstalledVersion() {
        installRemote("x", file(9))
        let v = installRemote("a", file(1))
        XCTAssertEqual(reconciler.observed("a", file(2, mtime: 200), index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [put("a", file(2, mtime: 200), base: v)])
    }

    func testAcceptedOutcomeRecordsTheVersionAndTheAnnouncedStateInTheManifest() {
        XCTAssertEqual(reconciler.observed("a", file(1), index: index), [])
        let (outcomes, actions) = commitOutbox()
        XCTAssertEqual(outcomes, [.accepted(version: 1)])
        XCTAssertEqual(actions, [])
        XCTAssertEqual(reconciler.manifest["a"], ManifestEntry(version: 1, local: file(1)))
        XCTAssertFalse(reconciler.hasPendingWork)
        // Already the origin, hence a holder: nothing more to say.
        XCTAssertFalse(reconciler.hasOutbox)
    }

    func testRejectedEditIsKeptAsAConflictCopyWhichIsAnnouncedWithBaseZeroThenTheWinnerIsFetched() throws {
        let v = installRemote("a.txt", file(1))
        let mine = file(2, mtime: 200)
        XCTAssertEqual(reconciler.observed("a.txt", mine, index: index), [])
        let proposal = reconciler.takeOutbox()
        // n2's concurrent edit of the same version commits first; n1 waits for its own outcome.
        XCTAssertEqual(commit("n2", [put("a.txt", file(3, mtime: 300), base: v)]).actions, [])
        let winner = try XCTUnwrap(index.record(at: "a.txt"))
        let (outcomes, actions) = commit("n1", proposal)
        XCTAssertEqual(outcomes, [.rejected(current: winner)])
        XCTAssertEqual(actions, [.conflictCopy(path: "a.txt", expected: mine)])

        let copyPath = "a.sync-conflict-20240101-000000-n1.txt"
        var copied = mine
        copied.mtime = 200
        let after = reconciler.conflictCopied("a.txt", to: copyPath, local: copied, index: index)
        XCTAssertEqual(after, [.observe(copyPath), .fetch(winner, expected: nil)])
        XCTAssertEqual(reconciler.installing["a.txt"], winner.version)
        XCTAssertEqual(reconciler.observed(copyPath, copied, index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [put(copyPath, copied, base: 0)])
    }

    func testConflictCopyMovedAwayBeforeItsReportIsNotAnnounced() throws {
        let v = installRemote("a", file(1))
        let mine = file(2, mtime: 200)
        reconciler.observed("a", mine, index: index)
        let proposal = reconciler.takeOutbox()
        commit("n2", [put("a", file(3, mtime: 300), base: v)])
        XCTAssertEqual(commit("n1", proposal).actions, [.conflictCopy(path: "a", expected: mine)])
        // The node renames "a" to the copy; the user renames the copy elsewhere at once, and
        // the watcher's event for the copy's path is handled before the rename's report.
        let copyPath = "a.sync-conflict-20240101-000000-n1"
        XCTAssertEqual(reconciler.observed(copyPath, nil, index: index), [])
        let after = reconciler.conflictCopied("a", to: copyPath, local: mine, index: index)
        XCTAssertEqual(after.first, .observe(copyPath))
        XCTAssertEqual(reconciler.observed(copyPath, nil, index: index), [])
        XCTAssertFalse(reconciler.takeOutbox().contains { $0.path == copyPath }, "bytes no disk has are not announced")
    }

    func testDeletionCommittedBeforeTheConflictCopyIsMadeDoesNotRemoveTheLosingBytes() throws {
        let v = installRemote("a", file(1))
        let mine = file(2, mtime: 200)
        reconciler.observed("a", mine, index: index)
        let proposal = reconciler.takeOutbox()
        commit("n2", [put("a", file(3, mtime: 300), base: v)])
        XCTAssertEqual(commit("n1", proposal).actions, [.conflictCopy(path: "a", expected: mine)])
        // n2 deletes its winner before n1's copy is made: n1's bytes are still only at "a".
        let deletion = nextEntry
        XCTAssertEqual(commit("n2", [put("a", nil, base: deletion - 2)]).actions, [])
        XCTAssertEqual(index.record(at: "a")?.kind, .deleted)
        let copyPath = "a.sync-conflict-20240101-000000-n1"
        XCTAssertEqual(reconciler.conflictCopied("a", to: copyPath, local: mine, index: index), [.observe(copyPath)])
        XCTAssertEqual(reconciler.observed(copyPath, mine, index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [.hold(path: "a", version: deletion), put(copyPath, mine, base: 0)])
    }

    func testOutcomeOfAnEarlierPutOfTheSamePathIsNotTakenForThePendingOne() throws {
        // n1 proposed "a" (first bytes); the proposal timed out and was sent again, but the
        // first one committed. Meanwhile the user wrote other bytes, proposed on that version.
        reconciler.observed("a", file(1), index: index)
        let first = reconciler.takeOutbox()
        reconciler.proposalFailed(first)
        let again = reconciler.takeOutbox()
        XCTAssertEqual(commit("n1", first).outcomes, [.accepted(version: 1)])
        let edit = file(2, mtime: 200)
        reconciler.observed("a", edit, index: index)
        let second = reconciler.takeOutbox()
        XCTAssertEqual(second, [put("a", edit, base: 1)])
        // n2 edits version 1 too and wins; then the duplicate of the first put commits.
        commit("n2", [put("a", file(3, mtime: 300), base: 1)])
        let winner = try XCTUnwrap(index.record(at: "a"))
        XCTAssertEqual(commit("n1", again).outcomes, [.rejected(current: winner)])
        // The duplicate's rejection is not the edit's: the edit is neither copied nor overwritten yet.
        XCTAssertEqual(reconciler.pendingPutCount, 1)
        XCTAssertEqual(commit("n1", second).actions, [.conflictCopy(path: "a", expected: edit)])
    }

    func testPutLosingToTheSameBytesWithAnotherModeTakesTheWinnersModeNotACopy() throws {
        // Both nodes wrote the same bytes; n1's user also made them private.
        commit("n2", [put("a", file(1, mode: 0o644, mtime: 100), base: 0)])
        let mine = file(1, mode: 0o600, mtime: 200)
        XCTAssertEqual(reconciler.installFailed("a", version: 1, .localChanged, index: index), [.observe("a")])
        XCTAssertEqual(reconciler.observed("a", mine, index: index), [])
        let proposal = reconciler.takeOutbox()
        XCTAssertEqual(proposal, [put("a", mine, base: 0)])
        let winner = try XCTUnwrap(index.record(at: "a"))
        XCTAssertEqual(commit("n1", proposal).actions, [.fetch(winner, expected: mine)], "no conflict copy of identical bytes")
    }

    func testBytesKeptForTheWinnersModeAreNotForgottenWhenTheFetchFailsAndThePathIsDeleted() throws {
        commit("n2", [put("a", file(1, mode: 0o644, mtime: 100), base: 0)])
        let mine = file(1, mode: 0o600, mtime: 200)
        XCTAssertEqual(reconciler.installFailed("a", version: 1, .localChanged, index: index), [.observe("a")])
        XCTAssertEqual(reconciler.observed("a", mine, index: index), [])
        let proposal = reconciler.takeOutbox()
        let winner = try XCTUnwrap(index.record(at: "a"))
        XCTAssertEqual(commit("n1", proposal).actions, [.fetch(winner, expected: mine)])
        // n2 deletes the file while n1's fetch (for the mode) cannot find a holder.
        commit("n2", [put("a", nil, base: winner.version)])
        XCTAssertEqual(reconciler.installFailed("a", version: winner.version, .transient("no holder"), index: index),
                       [.retryLater("a")])
        let retry = reconciler.reconcile("a", index: index)
        XCTAssertNotEqual(retry, [], "n1 still has bytes at a: holding the deletion would leave them there, untracked")
        XCTAssertFalse(reconciler.takeOutbox().contains(.hold(path: "a", version: nextEntry - 1)))
    }

    func testRejectedChangeWhoseCopyWasNotMadeBeforeARestartLosesAgainAfterIt() throws {
        let v = installRemote("a", file(1))
        let mine = file(2, mtime: 200)
        reconciler.observed("a", mine, index: index)
        let proposal = reconciler.takeOutbox()
        commit("n2", [put("a", file(3, mtime: 300), base: v)])
        XCTAssertEqual(commit("n1", proposal).actions, [.conflictCopy(path: "a", expected: mine)])
        // The node stops before making the copy; it restarts from its saved manifest and scans.
        reconciler = Reconciler(node: "n1", manifest: reconciler.manifest)
        XCTAssertEqual(reconciler.observed("a", mine, index: index), [.conflictCopy(path: "a", expected: mine)])
        XCTAssertFalse(reconciler.hasOutbox)
    }

    func testConflictCopyThatFailedIsAskedForAgainWhenTheFileLooksAsBefore() throws {
        let v = installRemote("a", file(1))
        let mine = file(2, mtime: 200)
        reconciler.observed("a", mine, index: index)
        let proposal = reconciler.takeOutbox()
        commit("n2", [put("a", file(3, mtime: 300), base: v)])
        XCTAssertEqual(commit("n1", proposal).actions, [.conflictCopy(path: "a", expected: mine)])
        // While the copy is under way, looks at the path wait for it.
        XCTAssertEqual(reconciler.observed("a", file(2, mode: 0o600, mtime: 200), index: index), [])
        XCTAssertFalse(reconciler.hasOutbox)
        // The user had chmod-ed the file, so the copy was not made; then chmod-ed it back
        // (mtime and inode unchanged). The node looks again and finds the same stat.
        XCTAssertEqual(reconciler.conflictCopyFailed("a", index: index), [.observe("a")])
        XCTAssertEqual(reconciler.observed("a", mine, index: index), [.conflictCopy(path: "a", expected: mine)])
        XCTAssertFalse(reconciler.hasOutbox)
    }

    func testVersionWithTheSameBytesArrivingWhileTheirConflictCopyIsMadeIsNotHeld() throws {
        let v = installRemote("a", file(1))
        let mine = file(2, mtime: 200)
        reconciler.observed("a", mine, index: index)
        let proposal = reconciler.takeOutbox()
        commit("n2", [put("a", file(3, mtime: 300), base: v)])
        XCTAssertEqual(commit("n1", proposal).actions, [.conflictCopy(path: "a", expected: mine)])
        // n2 then writes exactly n1's bytes: n1 must not hold them, they are being moved away.
        let (_, actions) = commit("n2", [put("a", file(2, mtime: 500), base: nextEntry - 2)])
        XCTAssertEqual(actions, [])
        XCTAssertFalse(reconciler.takeOutbox().contains { if case .hold = $0 { return true }; return false })
        let copyPath = "a.sync-conflict-20240101-000000-n1"
        let record = try XCTUnwrap(index.record(at: "a"))
        XCTAssertEqual(reconciler.conflictCopied("a", to: copyPath, local: mine, index: index),
                       [.observe(copyPath), .fetch(record, expected: nil)])
    }

    func testRejectedBytesTheIndexLaterHasUnderAnotherModeAreNotCopied() throws {
        let v = installRemote("a", file(1))
        let mine = file(2, mtime: 200)
        reconciler.observed("a", mine, index: index)
        let proposal = reconciler.takeOutbox()
        commit("n2", [put("a", file(3, mtime: 300), base: v)])
        XCTAssertEqual(commit("n1", proposal).actions, [.conflictCopy(path: "a", expected: mine)])
        XCTAssertEqual(reconciler.conflictCopyFailed("a", index: index), [.observe("a")])
        // Before n1 looks again, n2 writes n1's bytes with mode 600: only the mode is fetched.
        let (_, actions) = commit("n2", [put("a", file(2, mode: 0o600, mtime: 500), base: nextEntry - 2)])
        XCTAssertEqual(actions, [.fetch(try XCTUnwrap(index.record(at: "a")), expected: mine)])
    }

    func testConflictCopyThatFailedBecauseOfAnEditAnnouncesTheEdit() throws {
        let v = installRemote("a", file(1))
        let mine = file(2, mtime: 200)
        reconciler.observed("a", mine, index: index)
        let proposal = reconciler.takeOutbox()
        commit("n2", [put("a", file(3, mtime: 300), base: v)])
        XCTAssertEqual(commit("n1", proposal).actions, [.conflictCopy(path: "a", expected: mine)])
        XCTAssertEqual(reconciler.conflictCopyFailed("a", index: index), [.observe("a")])
        let edited = file(4, mtime: 400)
        XCTAssertEqual(reconciler.observed("a", edited, index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [put("a", edited, base: 0)])
    }

    func testOwnPutCommittingAfterARestartForBytesNoLongerThereIsReplacedByWhatIsThere() {
        // n1 proposed "a", then the user deleted it and n1 restarted before the put committed.
        reconciler.observed("a", file(1), index: index)
        let proposal = reconciler.takeOutbox()
        reconciler = Reconciler(node: "n1", manifest: reconciler.manifest)
        XCTAssertEqual(reconciler.observed("a", nil, index: index), [])
        // The old put commits: n1 had those bytes at version 1, and what it has now came after.
        XCTAssertEqual(commit("n1", proposal).actions, [.observe("a")])
        XCTAssertEqual(reconciler.observed("a", nil, index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [put("a", nil, base: 1)])
    }

    func testEditLosingToAStateThisNodeHeldIsProposedOnTopOfIt() throws {
        // n1 announced "a" and restarted before the put committed; the user then edited "a".
        let first = file(1)
        reconciler.observed("a", first, index: index)
        let proposal = reconciler.takeOutbox()
        reconciler = Reconciler(node: "n1", manifest: reconciler.manifest)
        let edit = file(2, mtime: 200)
        XCTAssertEqual(reconciler.observed("a", edit, index: index), [])
        let second = reconciler.takeOutbox()
        XCTAssertEqual(second, [put("a", edit, base: 0)])
        // The old put commits first; the edit, on base 0, loses to it, but it is n1's own older state.
        XCTAssertEqual(commit("n1", proposal).actions, [])
        let (outcomes, actions) = commit("n1", second)
        XCTAssertEqual(outcomes, [.rejected(current: try XCTUnwrap(index.record(at: "a")))])
        XCTAssertEqual(actions, [], "no conflict copy of the user's own later edit")
        XCTAssertEqual(reconciler.takeOutbox(), [put("a", edit, base: 1)])
    }

    func testRejectedDeleteRestoresTheWinner() throws {
        let v = installRemote("a", file(1))
        XCTAssertEqual(reconciler.observed("a", nil, index: index), [])
        let proposal = reconciler.takeOutbox()
        XCTAssertEqual(proposal, [put("a", nil, base: v)])
        commit("n2", [put("a", file(3, mtime: 300), base: v)])
        let winner = try XCTUnwrap(index.record(at: "a"))
        let (outcomes, actions) = commit("n1", proposal)
        XCTAssertEqual(outcomes, [.rejected(current: winner)])
        XCTAssertEqual(actions, [.fetch(winner, expected: nil)])
    }

    func testUnchangedObservationProposesNothing() {
        installRemote("a", file(1))
        XCTAssertEqual(reconciler.observed("a", file(1), index: index), [])
        XCTAssertFalse(reconciler.hasOutbox)
        XCTAssertFalse(reconciler.hasPendingWork)
    }

    func testObservationMatchingTheRecordsContentOnlyHolds() {
        // n1 starts up (or joins) with the bytes n2 announced, under another inode and mtime.
        _ = index.apply(IndexCommand(origin: "n2", changes: [put("a", file(1, mtime: 100, inode: 7), base: 0)]), at: 1)
        let mine = file(1, mtime: 555, inode: 8)
        XCTAssertEqual(reconciler.observed("a", mine, index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [.hold(path: "a", version: 1)])
        XCTAssertEqual(reconciler.manifest["a"], ManifestEntry(version: 1, local: mine))
    }

    func testObservationWhileAPutIsInFlightIsLookedAtAgainAfterTheOutcome() {
        XCTAssertEqual(reconciler.observed("a", file(1), index: index), [])
        let proposal = reconciler.takeOutbox()
        XCTAssertEqual(reconciler.observed("a", file(2, mtime: 200), index: index), [])
        XCTAssertFalse(reconciler.hasOutbox, "one put per path in flight")
        XCTAssertEqual(commit("n1", proposal).actions, [.observe("a")])
        XCTAssertEqual(reconciler.observed("a", file(2, mtime: 200), index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [put("a", file(2, mtime: 200), base: 1)])
    }

    func testFailedProposalIsProposedAgain() {
        XCTAssertEqual(reconciler.observed("a", file(1), index: index), [])
        let proposal = reconciler.takeOutbox()
        reconciler.proposalFailed(proposal)
        XCTAssertEqual(reconciler.takeOutbox(), proposal)
    }

    func testFailedProposalIsNotSentAgainOnceALaterPutOfThePathReplacedIt() {
        // The first put timed out but committed; the user then deleted the file.
        reconciler.observed("a", file(1), index: index)
        let first = reconciler.takeOutbox()
        XCTAssertEqual(commit("n1", first).outcomes, [.accepted(version: 1)])
        XCTAssertEqual(reconciler.observed("a", nil, index: index), [])
        let deletion = reconciler.takeOutbox()
        XCTAssertEqual(deletion, [put("a", nil, base: 1)])
        reconciler.proposalFailed(first)
        XCTAssertEqual(reconciler.takeOutbox(), [], "resending the first put would revive the deleted file")
    }

    // MARK: remote changes

    func testRemotePutIsFetchedExpectingWhatTheManifestSaysIsOnDisk() throws {
        let v = installRemote("a", file(1))
        let (_, actions) = commit("n2", [put("a", file(2, mtime: 200), base: v)])
        let record = try XCTUnwrap(index.record(at: "a"))
        XCTAssertEqual(actions, [.fetch(record, expected: file(1))])
        XCTAssertEqual(reconciler.installing["a"], record.version)
    }

    func testRemoteNewDirectoryAndSymlinkAreCreatedExpectingNothing() throws {
        let link = LocalFile(kind: .symlink, mode: 0o777, mtime: 5, target: "../t")
        let (_, actions) = commit("n2", [put("d", directory(), base: 0), put("l", link, base: 0)])
        XCTAssertEqual(actions, [.makeDirectory(try XCTUnwrap(index.record(at: "d")), expected: nil),
                                 .makeSymlink(try XCTUnwrap(index.record(at: "l")), expected: nil)])
    }

    func testRemoteDeleteRemovesTheFileExpectingWhatTheManifestSaysIsOnDisk() {
        let v = installRemote("a", file(1))
        let (_, actions) = commit("n2", [put("a", nil, base: v)])
        XCTAssertEqual(actions, [.remove(path: "a", version: v + 2, expected: file(1))])
        XCTAssertEqual(reconciler.installed("a", version: v + 2, local: nil, index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [.hold(path: "a", version: v + 2)])
        XCTAssertEqual(reconciler.manifest["a"], ManifestEntry(version: v + 2, local: nil))
    }

    func testRemoteDeleteOfAPathThisNodeNeverHadOnlyHolds() {
        commit("n2", [put("a", file(1), base: 0)])
        // n1 has not fetched it yet (the fetch failed); n2 deletes it.
        XCTAssertEqual(reconciler.installFailed("a", version: 1, .transient("no holder"), index: index), [.retryLater("a")])
        XCTAssertEqual(commit("n2", [put("a", nil, base: 1)]).actions, [])
        XCTAssertEqual(reconciler.takeOutbox(), [.hold(path: "a", version: 2)])
    }

    func testDeletedThenRecreatedNameIsProposedAndAcceptedNotDeletedAgain() throws {
        let v = installRemote("a", file(1))
        let (_, removal) = commit("n2", [put("a", nil, base: v)])
        let deletion = v + 2
        XCTAssertEqual(removal, [.remove(path: "a", version: deletion, expected: file(1))])
        XCTAssertEqual(reconciler.installed("a", version: deletion, local: nil, index: index), [])
        commitOutbox()
        // The user makes a new "a".
        let again = file(4, mtime: 400, inode: 9)
        XCTAssertEqual(reconciler.observed("a", again, index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [put("a", again, base: deletion)])
        // Taken from the outbox above and committed:
        let (outcomes, actions) = commit("n1", [put("a", again, base: deletion)])
        XCTAssertEqual(outcomes, [.accepted(version: deletion + 2)])
        XCTAssertEqual(actions, [], "the re-created file is not removed again")
        XCTAssertEqual(reconciler.manifest["a"], ManifestEntry(version: deletion + 2, local: again))
        XCTAssertEqual(index.record(at: "a")?.kind, .file)
    }

    func testNameRecreatedOnTheNodeThatDeletedItIsNotRemoved() {
        let v = installRemote("a", file(1))
        XCTAssertEqual(reconciler.observed("a", nil, index: index), [])
        XCTAssertEqual(commitOutbox().outcomes, [.accepted(version: v + 2)])
        let again = file(4, mtime: 400, inode: 9)
        XCTAssertEqual(reconciler.observed("a", again, index: index), [])
        let (outcomes, actions) = commitOutbox()
        XCTAssertEqual(outcomes, [.accepted(version: v + 3)])
        XCTAssertEqual(actions, [])
        XCTAssertFalse(reconciler.hasPendingWork)
    }

    func testFileCreatedUnderADeletedDirectoryRevivesTheDirectory() throws {
        let vd = installRemote("d", directory())
        let vx = installRemote("d/x", file(1))
        // n2 removed the whole directory.
        let (_, removals) = commit("n2", [put("d/x", nil, base: vx), put("d", nil, base: vd)])
        let deletion = nextEntry - 1
        XCTAssertEqual(removals, [.remove(path: "d/x", version: deletion, expected: file(1)),
                                  .remove(path: "d", version: deletion, expected: directory())])
        // d/x goes; before d does, the user writes d/y, so removing d fails (not empty).
        XCTAssertEqual(reconciler.installed("d/x", version: deletion, local: nil, index: index), [])
        XCTAssertEqual(reconciler.installFailed("d", version: deletion, .transient("not empty"), index: index),
                       [.retryLater("d")])
        XCTAssertEqual(reconciler.observed("d/y", file(2), index: index), [])
        let changes = reconciler.takeOutbox()
        XCTAssertTrue(changes.contains(put("d", directory(), base: vd)), "\(changes)")
        XCTAssertTrue(changes.contains(put("d/y", file(2), base: 0)), "\(changes)")
        let (outcomes, _) = commit("n1", changes)
        for (change, outcome) in zip(changes, outcomes) where change.path != "d/x" {
            guard case .accepted = outcome else { return XCTFail("\(change) -> \(outcome)") }
        }
        XCTAssertEqual(index.record(at: "d")?.kind, .directory)
        XCTAssertEqual(reconciler.reconcile("d", index: index), [], "the retry finds the directory current")
    }

    func testDirectoryRevivedWhileAnInstallOfItRunsIsLookedAtAgainAfterTheRevival() throws {
        let vd = installRemote("d", directory())
        let (_, chmod) = commit("n2", [put("d", directory(mode: 0o700), base: vd)])
        XCTAssertEqual(chmod, [.makeDirectory(try XCTUnwrap(index.record(at: "d")), expected: directory())])
        let chmodVersion = nextEntry - 1
        // n2 then deletes d; n1's chmod is still running, and the user creates d/y.
        XCTAssertEqual(commit("n2", [put("d", nil, base: chmodVersion)]).actions, [])
        XCTAssertEqual(reconciler.observed("d/y", file(2), index: index), [])
        let revival = reconciler.takeOutbox()
        XCTAssertEqual(revival, [put("d", directory(), base: vd), put("d/y", file(2), base: 0)],
                       "the revival can only announce what the manifest knows")
        let chmodded = directory(mode: 0o700, inode: 50)
        XCTAssertEqual(reconciler.installed("d", version: chmodVersion, local: chmodded, index: index), [])
        let (outcomes, actions) = commit("n1", revival)
        XCTAssertEqual(outcomes.count, 2)
        XCTAssertTrue(actions.contains(.observe("d")), "the revival announced 755; the disk has 700: \(actions)")
    }

    func testForgottenTombstoneLeavesNoManifestEntry() {
        let v = installRemote("a", file(1))
        commit("n2", [put("a", nil, base: v)])
        XCTAssertEqual(reconciler.installed("a", version: v + 2, local: nil, index: index), [])
        commitOutbox()
        commit("n2", [.forget(path: "a", version: v + 2)])
        XCTAssertNil(index.record(at: "a"))
        XCTAssertNil(reconciler.manifest["a"])
    }

    // MARK: installs

    func testInstallFailingBecauseTheUserChangedTheFileAsksToObserveAgain() {
        let v = installRemote("a", file(1))
        commit("n2", [put("a", file(2, mtime: 200), base: v)])
        XCTAssertEqual(reconciler.installFailed("a", version: v + 2, .localChanged, index: index), [.observe("a")])
        XCTAssertNil(reconciler.installing["a"])
        // The user's edit of version v is then proposed on that base, and loses to n2's.
        XCTAssertEqual(reconciler.observed("a", file(3, mtime: 300), index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [put("a", file(3, mtime: 300), base: v)])
    }

    func testTransientInstallFailureIsRetriedLater() {
        commit("n2", [put("a", file(1), base: 0)])
        XCTAssertEqual(reconciler.installFailed("a", version: 1, .transient("no holder"), index: index), [.retryLater("a")])
        XCTAssertEqual(reconciler.reconcile("a", index: index), [.fetch(index.record(at: "a")!, expected: nil)])
    }

    func testChangeObservedDuringAnInstallThatFailsTransientlyIsLookedAtAgain() {
        let vd = installRemote("d", directory())
        commit("n2", [put("d", nil, base: vd)])
        let deletion = nextEntry - 1
        // While the removal runs, the user makes the directory private.
        XCTAssertEqual(reconciler.observed("d", directory(mode: 0o700, mtime: 300), index: index), [])
        XCTAssertEqual(reconciler.installFailed("d", version: deletion, .transient("directory not empty"), index: index),
                       [.observe("d"), .retryLater("d")])
        XCTAssertEqual(reconciler.observed("d", directory(mode: 0o700, mtime: 300), index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [put("d", directory(mode: 0o700, mtime: 300), base: vd)])
    }

    func testNewerVersionWaitsForTheInstallInFlightAndIsFetchedOverWhatThatInstalled() throws {
        let (_, first) = commit("n2", [put("a", file(1), base: 0)])
        XCTAssertEqual(first, [.fetch(try XCTUnwrap(index.record(at: "a")), expected: nil)])
        XCTAssertEqual(commit("n2", [put("a", file(2, mtime: 200), base: 1)]).actions, [],
                       "a second install of the path would race the first")
        let installedFirst = file(1, inode: 5)
        XCTAssertEqual(reconciler.installed("a", version: 1, local: installedFirst, index: index),
                       [.fetch(try XCTUnwrap(index.record(at: "a")), expected: installedFirst)])
    }

    func testInstalledVersionIsHeld() {
        commit("n2", [put("a", file(1), base: 0)])
        XCTAssertEqual(reconciler.installed("a", version: 1, local: file(1, inode: 3), index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [.hold(path: "a", version: 1)])
    }
}
