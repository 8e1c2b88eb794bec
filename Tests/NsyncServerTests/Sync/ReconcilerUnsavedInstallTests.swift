import XCTest
@testable import NsyncServer

/// Directories and symlinks installed after the last manifest save (no
/// journal covers them) are known at start-up from the index as replayed,
/// so a deletion made while the node was down removes them rather than
/// finding them unknown and announcing them back; what the user made while
/// the node was down still wins.
final class ReconcilerUnsavedInstallTests: ReconcilerTestCase {
    /// n1 installed folder "d" and "d/f" from n2 (holds committed), then was
    /// killed before its manifest save: restarted with "d/f" known (the
    /// install journal) and "d" not. Returns the two versions.
    private func restartAfterInstallingAFolder(dirMode: UInt32 = 0o755) -> (folder: UInt64, file: UInt64) {
        let folder = installRemote("d", directory(mode: dirMode))
        let inside = installRemote("d/f", file(1))
        var saved = reconciler.manifest
        saved["d"] = nil
        reconciler = Reconciler(node: "n1", manifest: saved)
        return (folder, inside)
    }

    /// n2 removes "d" and "d/f" (node down): applied here after the restart.
    private func removeFolderElsewhere(_ versions: (folder: UInt64, file: UInt64)) -> [SyncAction] {
        commit("n2", [put("d/f", nil, base: versions.file), put("d", nil, base: versions.folder)]).actions
    }

    func testAFolderInstalledBeforeAKillAndRemovedWhileDownIsRemovedNotAnnouncedBack() {
        let versions = restartAfterInstallingAFolder()
        XCTAssertEqual(reconciler.unsavedInstallCandidates(in: index).map(\.path), ["d"])
        let onDisk = directory(mtime: 300)  // its mtime moved as its entries arrived
        XCTAssertTrue(reconciler.adoptUnsavedInstall(index.record(at: "d")!, found: onDisk))
        XCTAssertEqual(reconciler.manifest["d"], ManifestEntry(version: versions.folder, local: onDisk))
        XCTAssertEqual(reconciler.unsavedInstallCandidates(in: index), [], "known now")

        let actions = removeFolderElsewhere(versions)
        let removal = index.record(at: "d")!.version
        XCTAssertTrue(actions.contains(.remove(path: "d", version: removal, expected: onDisk)), "\(actions)")
        XCTAssertEqual(reconciler.observed("d", onDisk, index: index), [], "the start-up look finds what it knows")
        XCTAssertFalse(reconciler.takeOutbox().contains { $0.path == "d" && $0.isPut }, "nothing of d is announced")
    }

    func testWithoutItTheUnknownFolderOnADeletedNameIsAnnounced() {
        // What the restart did before: the folder, unknown, taken for the user's.
        let versions = restartAfterInstallingAFolder()
        XCTAssertEqual(removeFolderElsewhere(versions).filter { $0 == .observe("d") }, [.observe("d")])
        XCTAssertEqual(reconciler.observed("d", directory(mtime: 300), index: index), [])
        XCTAssertEqual(reconciler.takeOutbox().filter { $0.path == "d" }, [put("d", directory(mtime: 300), base: 0)])
    }

    func testAFileTheUserPutInTheFolderWhileDownStillBringsTheFolderBack() {
        let versions = restartAfterInstallingAFolder()
        let onDisk = directory(mtime: 300)
        XCTAssertTrue(reconciler.adoptUnsavedInstall(index.record(at: "d")!, found: onDisk))
        _ = removeFolderElsewhere(versions)
        XCTAssertEqual(reconciler.observed("d/new", file(9, inode: 9), index: index), [])
        XCTAssertEqual(reconciler.takeOutbox(), [put("d", onDisk, base: versions.folder), put("d/new", file(9, inode: 9), base: 0)],
                       "an edit beats a delete: the new file and its folder")
    }

    func testAFolderWhoseModeTheUserChangedIsNotTakenForTheInstall() {
        _ = restartAfterInstallingAFolder()
        XCTAssertFalse(reconciler.adoptUnsavedInstall(index.record(at: "d")!, found: directory(mode: 0o700)),
                       "chmod'ed while down: the user's change")
        XCTAssertFalse(reconciler.adoptUnsavedInstall(index.record(at: "d")!, found: file(1)))
        XCTAssertFalse(reconciler.adoptUnsavedInstall(index.record(at: "d")!, found: nil))
        XCTAssertNil(reconciler.manifest["d"])
    }

    func testAFolderKilledBeforeItsHoldCommittedIsTakenForTheInstallToo() {
        // Made here, then killed before the hold went out: the index has n2's folder, held by n2 alone.
        let made = commit("n2", [put("e", directory(), base: 0)])
        XCTAssertEqual(made.actions.count, 1)
        XCTAssertEqual(reconciler.unsavedInstallCandidates(in: index).map(\.path), ["e"])
        reconciler = Reconciler(node: "n1", manifest: reconciler.manifest)
        XCTAssertTrue(reconciler.adoptUnsavedInstall(index.record(at: "e")!, found: directory(inode: 70)))
        let removal = commit("n2", [put("e", nil, base: index.record(at: "e")!.version)]).actions
        XCTAssertEqual(removal, [.remove(path: "e", version: index.record(at: "e")!.version, expected: directory(inode: 70))])
    }

    func testARejectedChangeOrANewerManifestEntryIsLeftAsItIs() {
        let versions = restartAfterInstallingAFolder()
        let mine = directory(mode: 0o700)
        var saved = reconciler.manifest
        saved["d"] = ManifestEntry(version: 0, local: mine)
        reconciler = Reconciler(node: "n1", manifest: saved)
        XCTAssertEqual(reconciler.unsavedInstallCandidates(in: index), [])
        XCTAssertFalse(reconciler.adoptUnsavedInstall(index.record(at: "d")!, found: directory()))
        saved["d"] = ManifestEntry(version: versions.folder + 5, local: nil)
        reconciler = Reconciler(node: "n1", manifest: saved)
        XCTAssertFalse(reconciler.adoptUnsavedInstall(index.record(at: "d")!, found: directory()))
        XCTAssertEqual(reconciler.manifest["d"], ManifestEntry(version: versions.folder + 5, local: nil))
    }

    func testASymlinkInstalledBeforeAKillIsKnownByItsTarget() {
        let link = LocalFile(kind: .symlink, mode: 0, mtime: 100, target: "f", inode: 60)
        _ = installRemote("l", link)
        var saved = reconciler.manifest
        saved["l"] = nil
        reconciler = Reconciler(node: "n1", manifest: saved)
        var other = link
        other.target = "g"
        XCTAssertFalse(reconciler.adoptUnsavedInstall(index.record(at: "l")!, found: other), "relinked by the user")
        XCTAssertTrue(reconciler.adoptUnsavedInstall(index.record(at: "l")!, found: link))
    }
}

private extension IndexChange {
    var isPut: Bool {
        if case .put(let p) = self { return p.kind != .deleted }
        return false
    }
}
