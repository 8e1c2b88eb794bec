import XCTest
@testable import NsyncServer

/// The reconciler when its own puts lose or come back unexpectedly: conflict
/// copies, deletions and remote versions racing them, proposals that commit
/// twice or after a restart. Each test is a scenario the seeded simulation
/// (ReconcilerSimulationTests) found, reduced to its events.
final class ReconcilerConflictTests: ReconcilerTestCase {
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
        // The index moved on (the deletion), so the failure leads straight to the next step.
        let next = reconciler.installFailed("a", version: winner.version, .transient("no holder"), index: index)
        XCTAssertEqual(next, [.conflictCopy(path: "a", expected: mine)],
                       "n1 still has bytes at a: holding the deletion would leave them there, untracked")
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

    func testDeletionFoundAtStartUpDoesNotRemoveALosingChangeWhoseCopyWasNotMade() throws {
        let v = installRemote("a", file(1))
        let mine = file(2, mtime: 200)
        reconciler.observed("a", mine, index: index)
        let proposal = reconciler.takeOutbox()
        commit("n2", [put("a", file(3, mtime: 300), base: v)])
        XCTAssertEqual(commit("n1", proposal).actions, [.conflictCopy(path: "a", expected: mine)])
        // n1 stops before the copy; meanwhile n2 deletes "a". n1 starts again.
        reconciler = Reconciler(node: "n1", manifest: reconciler.manifest)
        _ = index.apply(IndexCommand(origin: "n2", changes: [put("a", nil, base: nextEntry - 2)]), at: nextEntry)
        nextEntry += 1
        XCTAssertEqual(reconciler.reconcileAll(index: index), [.conflictCopy(path: "a", expected: mine)],
                       "removing n1's bytes would lose them: they were never in the index")
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
        // Before n1 looks again, n2 writes n1's bytes with mode 600: only the
        // mode and mtime are set here, nothing is fetched.
        let (_, actions) = commit("n2", [put("a", file(2, mode: 0o600, mtime: 500), base: nextEntry - 2)])
        XCTAssertEqual(actions, [.setModificationTime(try XCTUnwrap(index.record(at: "a")), expected: mine)])
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

    func testOwnPutRevivedByADuplicateWhileItsBytesAreMovedAsideIsRetractedNotFetched() throws {
        let v = installRemote("a", file(1))
        let mine = file(2, mtime: 200)
        reconciler.observed("a", mine, index: index)
        let proposal = reconciler.takeOutbox()
        // Told it timed out, n1 sends it again; in fact the first one commits too.
        reconciler.proposalFailed(proposal)
        let duplicate = reconciler.takeOutbox()
        commit("n2", [put("a", file(3, mtime: 300), base: v)])
        XCTAssertEqual(commit("n1", proposal).actions, [.conflictCopy(path: "a", expected: mine)])
        commit("n2", [put("a", nil, base: nextEntry - 2)])
        // The duplicate lands on the tombstone: edits beat deletes, so it revives "a" with
        // n1 as sole holder, while n1 is moving those very bytes to the copy.
        let (outcomes, _) = commit("n1", duplicate)
        XCTAssertEqual(outcomes, [.accepted(version: nextEntry - 1)])
        let revived = try XCTUnwrap(index.record(at: "a"))
        let copyPath = "a.sync-conflict-20240101-000000-n1"
        let after = reconciler.conflictCopied("a", to: copyPath, local: mine, index: index)
        XCTAssertFalse(after.contains(.fetch(revived, expected: nil)), "no node has those bytes at a: \(after)")
        XCTAssertTrue(reconciler.takeOutbox().contains(put("a", nil, base: revived.version)))
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
}
