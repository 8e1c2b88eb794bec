import XCTest
@testable import NsyncServer

/// The reconciler's answers to single events, one behaviour per test:
/// announcing local changes, following remote ones, and installs.
final class ReconcilerTests: ReconcilerTestCase {
    // MARK: local changes

    func testAReplayedOldDeletionLeavesTheNewerFileTheManifestHolds() {
        // The log since the snapshot: a, deleted by n2, then made again by n1.
        let first = installRemote("a", file(1))
        let (deletion, recreation) = (nextEntry, nextEntry + 1)
        let log = [IndexCommand(origin: "n2", changes: [put("a", nil, base: first)]),
                   IndexCommand(origin: "n1", changes: [put("a", file(2, mtime: 200), base: deletion)])]
        var latest = index
        _ = latest.apply(log[0], at: deletion)
        _ = latest.apply(log[1], at: recreation)
        XCTAssertEqual(latest.record(at: "a")?.version, recreation)
        // A restart: the manifest saved at the end of that log, the index at the snapshot before it.
        reconciler = Reconciler(node: "n1", manifest: ["a": ManifestEntry(version: recreation, local: file(2, mtime: 200))])
        XCTAssertEqual(commit("n2", log[0].changes).actions, [], "the deletion is older than the file on disk")
        XCTAssertFalse(reconciler.hasOutbox)
        XCTAssertEqual(commit("n1", log[1].changes).outcomes, [.accepted(version: recreation)])
        XCTAssertEqual(reconciler.manifest["a"], ManifestEntry(version: recreation, local: file(2, mtime: 200)))
        XCTAssertEqual(reconciler.reconcile("a", index: index), [], "the index caught up: nothing to do")
    }

    func testLargeFilesAreFoundByTheirBytesAsTheManifestChanges() {
        let big = FileContent.localCopyMinimumSize
        let content = { (byte: UInt8) in FileContent(size: big, hash: self.hash(byte)) }
        reconciler = Reconciler(node: "n1", manifest: ["start": ManifestEntry(version: 1, local: file(7, size: big))])
        XCTAssertEqual(reconciler.largeFiles, [content(7): ["start"]], "from the saved manifest")
        installRemote("a", file(1, size: big))
        installRemote("b", file(1, size: big, inode: 2))
        installRemote("small", file(1, size: big - 1))
        XCTAssertEqual(reconciler.largeFiles[content(1)], ["a", "b"], "both names, not the small file")
        XCTAssertEqual(reconciler.observed("a", file(2, size: big, mtime: 200), index: index), [])
        XCTAssertEqual(reconciler.largeFiles[content(1)], ["a", "b"], "until the edit commits, the manifest knows the old bytes")
        _ = commitOutbox()
        XCTAssertEqual(reconciler.largeFiles[content(1)], ["b"], "a holds other bytes now")
        XCTAssertEqual(reconciler.largeFiles[content(2)], ["a"])
        XCTAssertEqual(reconciler.observed("b", nil, index: index), [])
        _ = commitOutbox()
        XCTAssertNil(reconciler.largeFiles[content(1)], "b is gone")
    }

    func testAFileRenamedOntoADeletedNameWithItsBytesIsTheUsersNotAStaleCopy() {
        // n2 deleted "a" (bytes 3). Here, with no manifest entry for "a", a
        // file with bytes 3 turns up there: left by a crash, it is a stale
        // copy and goes; renamed there by the user (from a name whose own
        // deletion goes out too), it is announced, or its bytes are lost everywhere.
        let created = commit("n2", [put("a", file(3), base: 0)]).outcomes
        guard case .accepted(let version)? = created.first else { return XCTFail("\(created)") }
        _ = commit("n2", [put("a", nil, base: version)])
        // Nothing of "a" was installed here (a fetch in flight is forgotten as by a restart).
        reconciler = Reconciler(node: "n1", manifest: reconciler.manifest)
        XCTAssertNil(reconciler.manifest["a"])
        let stale = file(3, inode: 7)
        var copy = reconciler
        XCTAssertEqual(copy.observed("a", stale, index: index),
                       [.remove(path: "a", version: index.record(at: "a")!.version, expected: stale)])
        XCTAssertEqual(reconciler.observed("a", stale, index: index, renamed: true), [])
        XCTAssertEqual(reconciler.takeOutbox(), [put("a", stale, base: 0)], "announced as the user's file")
    }

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

    func testUnchangedObservationProposesNothing() {
        installRemote("a", file(1))
        XCTAssertEqual(reconciler.observed("a", file(1), index: index), [])
        XCTAssertFalse(reconciler.hasOutbox)
        XCTAssertFalse(reconciler.hasPendingWork)
    }

    func testObservationMatchingTheRecordsContentTakesItsMtimeThenHolds() {
        // n1 starts up (or joins) with the bytes n2 announced, under another inode and mtime:
        // no new version, no fetch, only the record's mtime so the trees match.
        _ = index.apply(IndexCommand(origin: "n2", changes: [put("a", file(1, mtime: 100, inode: 7), base: 0)]), at: 1)
        let mine = file(1, mtime: 555, inode: 8)
        let record = index.record(at: "a")!
        XCTAssertEqual(reconciler.observed("a", mine, index: index), [.setModificationTime(record, expected: mine)])
        XCTAssertEqual(reconciler.takeOutbox(), [])
        let touched = file(1, mtime: 100, inode: 8)
        XCTAssertEqual(reconciler.installed("a", version: 1, local: touched, index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [.hold(path: "a", version: 1)])
        XCTAssertEqual(reconciler.manifest["a"], ManifestEntry(version: 1, local: touched))
    }

    func testTouchOfAHeldFileIsAnnouncedOnTheCurrentVersion() {
        let v = installRemote("a", file(1, mtime: 100))
        let touched = file(1, mtime: 777)
        XCTAssertEqual(reconciler.observed("a", touched, index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [put("a", touched, base: v)])
        // The index takes a touch on the current version as a new version.
        let next = nextEntry
        let (outcomes, actions) = commit("n1", [put("a", touched, base: v)])
        XCTAssertEqual(outcomes, [.accepted(version: next)])
        XCTAssertEqual(actions, [])
        XCTAssertEqual(reconciler.manifest["a"], ManifestEntry(version: next, local: touched))
        XCTAssertEqual(index.record(at: "a")?.mtime, 777)
    }

    func testRemoteTouchSetsOnlyTheMtimeHere() {
        let v = installRemote("a", file(1, mtime: 100))
        let next = nextEntry
        let (_, actions) = commit("n2", [put("a", file(1, mtime: 900), base: v)])
        let record = index.record(at: "a")!
        XCTAssertEqual(record.version, next)
        XCTAssertEqual(actions, [.setModificationTime(record, expected: file(1, mtime: 100))],
                       "the same bytes are not fetched again; only the mtime changes")
        XCTAssertEqual(reconciler.installed("a", version: next, local: file(1, mtime: 900), index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [.hold(path: "a", version: next)])
        // The watcher's event for that mtime change is not a touch of ours.
        XCTAssertEqual(reconciler.observed("a", file(1, mtime: 900), index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [.hold(path: "a", version: next)], "no put: only the hold, not yet committed")
    }

    func testTouchOfASymlinkIsAnnouncedAndOnlyItsMtimeIsSetElsewhere() {
        let link = { (mtime: Int64) in LocalFile(kind: .symlink, mode: 0, mtime: mtime, target: "../t", inode: 3) }
        let v = installRemote("l", link(100))
        // touch -h here (or cp -a setting the link's time after making it): a new version.
        XCTAssertEqual(reconciler.observed("l", link(777), index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [put("l", link(777), base: v)])
        let touched = nextEntry
        XCTAssertEqual(commit("n1", [put("l", link(777), base: v)]).outcomes, [.accepted(version: touched)])
        XCTAssertEqual(index.record(at: "l")?.mtime, 777)
        // touch -h on another node: the link is not made again, only its mtime set.
        let next = nextEntry
        let (_, actions) = commit("n2", [put("l", link(900), base: touched)])
        let record = index.record(at: "l")!
        XCTAssertEqual(record.version, next)
        XCTAssertEqual(actions, [.setModificationTime(record, expected: link(777))])
        XCTAssertEqual(reconciler.installed("l", version: next, local: link(900), index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [.hold(path: "l", version: next)])
    }

    func testALinkTimedBeforeLinkMtimesSyncedIsAnnouncedByItsOriginOnly() {
        // Before the upgrade the origin announced the link as made (mtime 100),
        // then cp -a set its time (50), which only its manifest learned.
        let link = { (mtime: Int64) in LocalFile(kind: .symlink, mode: 0, mtime: mtime, target: "t", inode: 3) }
        _ = index.apply(IndexCommand(origin: "n1", changes: [put("mine", link(100), base: 0)]), at: 1)
        _ = index.apply(IndexCommand(origin: "n2", changes: [put("theirs", link(100), base: 0)]), at: 2)
        nextEntry = 3
        reconciler = Reconciler(node: "n1", manifest: ["mine": ManifestEntry(version: 1, local: link(50)),
                                                       "theirs": ManifestEntry(version: 2, local: link(70))])
        XCTAssertEqual(reconciler.reconcile("mine", index: index), [])
        XCTAssertEqual(reconciler.reconcile("theirs", index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [put("mine", link(50), base: 1), .hold(path: "theirs", version: 2)],
                       "the origin's link announced as a touch; another's held as it is here")
        XCTAssertEqual(commit("n1", [put("mine", link(50), base: 1)]).outcomes, [.accepted(version: 3)])
        XCTAssertEqual(reconciler.reconcile("mine", index: index), [])
        XCTAssertFalse(reconciler.hasOutbox, "once the index has the time, nothing more")
    }

    func testMtimeTheFileSystemRoundsIsNotAnnouncedBack() {
        // A receiver whose file system keeps coarser mtimes than the origin's.
        let v = installRemote("a", file(1, mtime: 100))
        let next = nextEntry
        let (_, actions) = commit("n2", [put("a", file(1, mtime: 1_234_567), base: v)])
        XCTAssertEqual(actions.count, 1)
        let rounded = file(1, mtime: 1_000_000)
        XCTAssertEqual(reconciler.installed("a", version: next, local: rounded, index: index), [])
        _ = reconciler.takeOutbox()
        XCTAssertEqual(reconciler.observed("a", rounded, index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [.hold(path: "a", version: next)], "what the install left is not a user's touch")
    }

    func testObservationMatchingTheRecordsContentAndMtimeOnlyHolds() {
        _ = index.apply(IndexCommand(origin: "n2", changes: [put("a", file(1, mtime: 100, inode: 7), base: 0)]), at: 1)
        let mine = file(1, mtime: 100, inode: 8)
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

    func testABatchAnnouncesNewDirectoriesBeforeWhatIsInThem() {
        // Seen child first (the order watcher events and hashing can give).
        XCTAssertEqual(reconciler.observed("d/e/f.txt", file(1), index: index), [])
        XCTAssertEqual(reconciler.observed("d/e", directory(inode: 51), index: index), [])
        XCTAssertEqual(reconciler.observed("d", directory(inode: 52), index: index), [])
        XCTAssertEqual(reconciler.takeOutbox().map(\.path), ["d", "d/e", "d/e/f.txt"])
    }

    func testABatchReplacingADirectoryWithAFileDeletesItsEntriesFirst() {
        let d = installRemote("d", directory())
        let x = installRemote("d/x", file(1))
        XCTAssertEqual(reconciler.observed("d/x", nil, index: index), [])
        XCTAssertEqual(reconciler.observed("d", file(2, inode: 9), index: index), [.observe("d/x")],
                       "the file waits for the deletion of what was in the directory")
        let (outcomes, actions) = commitOutbox()
        XCTAssertEqual(outcomes, [.accepted(version: x + 2)])
        XCTAssertTrue(actions.contains(.observe("d")), "\(actions)")
        XCTAssertEqual(reconciler.observed("d", file(2, inode: 9), index: index), [])
        let proposal = reconciler.takeOutbox()
        XCTAssertEqual(proposal, [put("d", file(2, inode: 9), base: d)])
        XCTAssertEqual(commit("n1", proposal).outcomes, [.accepted(version: x + 3)], "not a conflict")
    }

    func testFetchFailingAfterTheIndexMovedOnGoesForTheNewVersionAtOnce() {
        let next = nextEntry
        let (_, first) = commit("n2", [put("a", file(1, mtime: 100), base: 0)])
        let v1 = index.record(at: "a")!
        XCTAssertEqual(first, [.fetch(v1, expected: nil)])
        // A touch on n2 commits while the fetch runs; n2 then refuses the old version.
        XCTAssertEqual(commit("n2", [put("a", file(1, mtime: 200), base: next)]).actions, [], "one install at a time")
        let v2 = index.record(at: "a")!
        XCTAssertEqual(reconciler.installFailed("a", version: v1.version, .transient("refused"), index: index),
                       [.fetch(v2, expected: nil)])
        // A failure of the current version still waits before retrying.
        XCTAssertEqual(reconciler.installFailed("a", version: v2.version, .transient("refused"), index: index),
                       [.retryLater("a")])
    }

    func testLiveEntryWhoseRecordTheIndexForgotIsAnnouncedAgain() {
        // The manifest saved before a crash says n1 holds the directory at v1;
        // since then the cluster deleted it, every node (n1 too, before the
        // crash) held the deletion, and the tombstone was forgotten. The
        // directory is on n1's disk again: unknown to the cluster, announced.
        let dir = directory(inode: 70)
        reconciler = Reconciler(node: "n1", manifest: ["d": ManifestEntry(version: 1, local: dir)])
        XCTAssertNil(index.record(at: "d"))
        XCTAssertEqual(reconciler.observed("d", dir, index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [put("d", dir, base: 0)])
    }

    func testAbsentPathWhoseRecordTheIndexForgotIsForgottenQuietly() {
        reconciler = Reconciler(node: "n1", manifest: ["gone": ManifestEntry(version: 4, local: file(1))])
        XCTAssertEqual(reconciler.observed("gone", nil, index: index), [])
        // A deletion of something the index does not have: the index answers alreadyCurrent(0).
        let proposal = reconciler.takeOutbox()
        XCTAssertEqual(proposal, [put("gone", nil, base: 4)])
        XCTAssertEqual(commit("n1", proposal).outcomes, [.alreadyCurrent(version: 0)])
        XCTAssertEqual(reconciler.manifest["gone"], ManifestEntry(version: 0, local: nil))
    }

    func testFailedProposalIsProposedAgain() {
        XCTAssertEqual(reconciler.observed("a", file(1), index: index), [])
        let proposal = reconciler.takeOutbox()
        reconciler.proposalFailed(proposal)
        XCTAssertEqual(reconciler.takeOutbox(), proposal)
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

    func testRemoteDeleteOfAPathThisNodeNeverHadIsHeldOnceTheDiskShowsItAbsent() {
        commit("n2", [put("a", file(1), base: 0)])
        // n1 has not fetched it yet (the fetch failed); n2 deletes it.
        XCTAssertEqual(reconciler.installFailed("a", version: 1, .transient("no holder"), index: index), [.retryLater("a")])
        // Knowing nothing of "a" is not knowing it is absent: look first.
        XCTAssertEqual(commit("n2", [put("a", nil, base: 1)]).actions, [.observe("a")])
        XCTAssertEqual(reconciler.takeOutbox(), [])
        XCTAssertEqual(reconciler.observed("a", nil, index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [.hold(path: "a", version: 2)])
    }

    func testOneBatchHoldsEachVersionOnce() {
        // n1 already has the bytes n2 announces: each look says "I hold it", once per batch.
        let (_, actions) = commit("n2", [put("b", file(1), base: 0)])
        XCTAssertEqual(actions.count, 1)
        XCTAssertEqual(reconciler.installed("b", version: 1, local: file(1), index: index), [])
        XCTAssertEqual(reconciler.observed("b", file(1), index: index), [])
        XCTAssertEqual(reconciler.reconcile("b", index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [.hold(path: "b", version: 1)])
    }

    func testNodeThatLostItsManifestDoesNotHoldADeletionOfAFileItStillHas() {
        // A restart after a crash: no manifest entry, the disk still has the
        // bytes the cluster deleted meanwhile. They are removed, not held as gone.
        commit("n2", [put("a", file(1), base: 0)])
        commit("n2", [put("a", nil, base: 1)])
        reconciler = Reconciler(node: "n1")
        XCTAssertEqual(reconciler.reconcileAll(index: index), [.observe("a")])
        XCTAssertEqual(reconciler.takeOutbox(), [])
        XCTAssertEqual(reconciler.observed("a", file(1), index: index), [.remove(path: "a", version: 2, expected: file(1))])
        XCTAssertEqual(reconciler.takeOutbox(), [], "no hold before the removal happened")
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

    /// n2 deleted d while n3's edit of d/x won: d/x stays, so d must too.
    /// Before, every node holding d tried to remove it forever ("directory
    /// not empty"), and the tombstone let a file be put over the name.
    func testDirectoryDeletedWhileAnEditInsideItWonIsRevivedNotRemoved() throws {
        let vd = installRemote("d", directory())
        let vx = installRemote("d/x", file(1))
        XCTAssertEqual(commit("n3", [put("d/x", file(2, mtime: 200), base: vx)]).actions,
                       [.fetch(try XCTUnwrap(index.record(at: "d/x")), expected: file(1))])
        let edit = nextEntry - 1
        let (outcomes, actions) = commit("n2", [put("d/x", nil, base: vx), put("d", nil, base: vd)])
        XCTAssertEqual(outcomes[0], .rejected(current: try XCTUnwrap(index.record(at: "d/x"))), "the edit beat the delete")
        XCTAssertEqual(outcomes[1], .accepted(version: edit + 1))
        XCTAssertEqual(actions, [], "d is not removed")
        let revival = reconciler.takeOutbox()
        XCTAssertEqual(revival, [put("d", directory(), base: edit + 1)], "d is announced again")
        XCTAssertEqual(commit("n1", revival).outcomes, [.accepted(version: edit + 2)])
        XCTAssertEqual(index.record(at: "d")?.kind, .directory)
        XCTAssertEqual(reconciler.reconcile("d", index: index), [])
    }

    /// A large rm -rf on n2 reaches the index in several entries, and d's
    /// deletion can land before d/y's: d/y is then live under a deleted d
    /// for a while, but n2 holds it (its deletion is on its way), so d is
    /// not revived. The removal waits. (Reviving it brought back an empty
    /// directory on every node after a rename of 10,000 files in 100
    /// folders, which spans five entries.)
    func testADirectoryDeletedBeforeItsEntriesIsRemovedOnceTheyGoNotRevived() throws {
        let vd = installRemote("d", directory())
        let vx = installRemote("d/x", file(1))
        let vy = installRemote("d/y", file(2))
        let (_, first) = commit("n2", [put("d/x", nil, base: vx), put("d", nil, base: vd)])
        let deletion = nextEntry - 1
        XCTAssertEqual(first, [.remove(path: "d/x", version: deletion, expected: file(1)),
                               .remove(path: "d", version: deletion, expected: directory())])
        XCTAssertEqual(reconciler.installed("d/x", version: deletion, local: nil, index: index), [])
        XCTAssertEqual(reconciler.installFailed("d", version: deletion, .transient("directory not empty"), index: index),
                       [.retryLater("d")])
        XCTAssertEqual(reconciler.reconcile("d", index: index), [.remove(path: "d", version: deletion, expected: directory())],
                       "the retry removes again, and announces nothing")
        XCTAssertEqual(reconciler.installFailed("d", version: deletion, .transient("directory not empty"), index: index),
                       [.retryLater("d")])
        let (_, second) = commit("n2", [put("d/y", nil, base: vy)])
        XCTAssertEqual(second, [.remove(path: "d/y", version: deletion + 1, expected: file(2))])
        XCTAssertEqual(reconciler.installed("d/y", version: deletion + 1, local: nil, index: index), [])
        XCTAssertEqual(reconciler.reconcile("d", index: index), [.remove(path: "d", version: deletion, expected: directory())])
        XCTAssertEqual(reconciler.installed("d", version: deletion, local: nil, index: index), [])
        XCTAssertFalse(reconciler.takeOutbox().contains { if case .put = $0 { true } else { false } }, "nothing revived")
    }

    /// `mv d tmp && mv tmp c` on n2: d's deletion lands while its entries
    /// are still here (they move out by the next entry), and moving them out
    /// changes d's mtime. A look at d between the two saw an edit beating
    /// the deletion and announced it: d came back on every node (the CI
    /// failure of the rename-chain tests).
    func testADirectoryWhoseDeletionWaitsIsNotAnnouncedWhenItsEntriesMovingOutChangeItsMtime() throws {
        let vd = installRemote("d", directory())
        let vx = installRemote("d/x", file(1))
        let (_, first) = commit("n2", [put("d", nil, base: vd)])
        let deletion = nextEntry - 1
        XCTAssertEqual(first, [.remove(path: "d", version: deletion, expected: directory())])
        XCTAssertEqual(reconciler.installFailed("d", version: deletion, .transient("directory not empty"), index: index),
                       [.retryLater("d")])
        XCTAssertEqual(commit("n2", [put("d/x", nil, base: vx)]).actions,
                       [.remove(path: "d/x", version: deletion + 1, expected: file(1))])
        XCTAssertEqual(reconciler.installed("d/x", version: deletion + 1, local: nil, index: index), [])
        let emptied = directory(mtime: 300)
        XCTAssertEqual(reconciler.observed("d", emptied, index: index),
                       [.remove(path: "d", version: deletion, expected: emptied)])
        XCTAssertFalse(reconciler.takeOutbox().contains { if case .put = $0 { true } else { false } }, "nothing revived")
        // Another directory under the name (a new inode) is the user's: announced.
        let other = directory(mtime: 400, inode: 51)
        XCTAssertEqual(reconciler.installFailed("d", version: deletion, .localChanged, index: index), [.observe("d")])
        XCTAssertEqual(reconciler.observed("d", other, index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [put("d", other, base: vd)])
    }

    /// `rm -rf d` on n2 while n1 still fetches d/x (n2 had it open for the
    /// transfer): d's removal here finds d empty (the bytes are still under
    /// .nsync/tmp) and goes; the fetch then lands, its install makes d again
    /// as a parent, d/x's deletion removes d/x, and the watcher's look at
    /// the new d found a directory unknown here on a deleted name: announced,
    /// an empty d back on every node. The removal waits for installs under it.
    func testAFetchUnderADeletedDirectoryLandingLateDoesNotBringTheDirectoryBack() throws {
        let vd = installRemote("d", directory())
        let x = file(1, inode: 2)
        let (_, fetch) = commit("n2", [put("d/x", x, base: 0)])
        let vx = nextEntry - 1
        XCTAssertEqual(fetch, [.fetch(index.record(at: "d/x")!, expected: nil)])
        // rm -rf d on n2, in one entry, while the fetch runs.
        let (_, removal) = commit("n2", [put("d/x", nil, base: vx), put("d", nil, base: vd)])
        let deletion = nextEntry - 1
        // The disk as the node would leave it: d removed now if asked.
        var dHere: LocalFile? = directory()
        for action in removal {
            if case .remove(path: "d", let version, _) = action {
                dHere = nil
                XCTAssertEqual(reconciler.installed("d", version: version, local: nil, index: index), [])
            }
        }
        // The fetch lands: d made again as a parent if it had gone.
        if dHere == nil { dHere = directory(mtime: 300, inode: 51) } else { dHere!.mtime = 300 }
        var actions = reconciler.installed("d/x", version: vx, local: x, index: index)
        XCTAssertEqual(actions, [.remove(path: "d/x", version: deletion, expected: x)])
        actions = reconciler.installed("d/x", version: deletion, local: nil, index: index)
        // The watcher's look at d (made, or its entries changed), then the retry.
        actions += reconciler.observed("d", dHere, index: index)
        actions += reconciler.reconcile("d", index: index)
        XCTAssertFalse(reconciler.takeOutbox().contains { if case .put = $0 { true } else { false } }, "d not revived")
        XCTAssertTrue(actions.contains(.remove(path: "d", version: deletion, expected: dHere!)), "\(actions)")
    }

    /// A directory moved away here while a fetch into it runs: the look the
    /// move asks for covers the fetched path too. Its file may already be
    /// in place (moved along with the directory) while the install's report
    /// is still on its way: only then does the manifest say it is held.
    /// Before, the move's looks covered the manifest and the puts in flight
    /// only, so nothing looked at d/x again: this node stayed a holder of
    /// d/x for good, without it on disk (others asking for it were refused),
    /// and d/x was never deleted although the user moved d away here.
    func testADirectoryMovedAwayDuringAFetchIntoItHasThatPathLookedAtToo() throws {
        installRemote("d", directory())
        installRemote("d/a", file(1))
        let x = file(2, inode: 3)
        let (_, fetch) = commit("n2", [put("d/x", x, base: 0)])
        let vx = nextEntry - 1
        XCTAssertEqual(fetch, [.fetch(index.record(at: "d/x")!, expected: nil)])
        XCTAssertNil(reconciler.manifest["d/x"])
        XCTAssertFalse(reconciler.isAnnouncing("d/x"))
        // mv d e here: the watcher's event asks for looks at all of d.
        XCTAssertEqual(Set(reconciler.pathsKnown(under: "d")), ["d/a", "d/x"])
        XCTAssertEqual(reconciler.pathsKnown(under: "d/a"), [], "nothing below a file")
        XCTAssertEqual(reconciler.pathsKnown(under: "e"), [])
        // The looks find d/x gone while its install is still out: held over.
        XCTAssertEqual(reconciler.observed("d/x", nil, index: index), [])
        // The install reports it put x at d/x (before the move took it to e).
        XCTAssertEqual(reconciler.installed("d/x", version: vx, local: x, index: index), [.observe("d/x")])
        XCTAssertEqual(reconciler.takeOutbox(), [.hold(path: "d/x", version: vx)])
        XCTAssertEqual(reconciler.observed("d/x", nil, index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [put("d/x", nil, base: vx)], "the move's deletion of d/x goes out")
    }

    /// A file installed before its directory's record makes the directory
    /// as a parent (mode 0755); the record's install then finds it there.
    /// Before, the look announced 0755 over the cluster's 0555.
    func testDirectoryMadeAsAParentTakesTheRecordsModeInsteadOfAnnouncingItsOwn() throws {
        let (_, actions) = commit("n2", [put("d", directory(mode: 0o555), base: 0)])
        let record = try XCTUnwrap(index.record(at: "d"))
        XCTAssertEqual(actions, [.makeDirectory(record, expected: nil)])
        XCTAssertEqual(reconciler.installFailed("d", version: record.version, .localChanged, index: index), [.observe("d")])
        let made = directory(mode: 0o755)
        XCTAssertEqual(reconciler.observed("d", made, index: index), [.makeDirectory(record, expected: made)])
        XCTAssertEqual(reconciler.takeOutbox(), [], "0755 is not announced")
        XCTAssertEqual(reconciler.installed("d", version: record.version, local: directory(mode: 0o555), index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [.hold(path: "d", version: record.version)])
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
