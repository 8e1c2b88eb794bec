import Foundation
import XCTest
@testable import NsyncServer

/// A touch from elsewhere is set in place and checked after
/// (`LocalDisk.setModificationTime`, `LocalDisk.isSet`): what the file
/// system stores is held, a write in the meantime is looked at.
final class TouchSettlesTests: ReconcilerTestCase {
    /// A file system stores an mtime only in its range: ext4 clamps times
    /// before 1901-12-13 (and after 2446), XFS without bigtime and small
    /// ext4 file systems after 2038, FAT before 1980. A touch from a node
    /// whose file system keeps the time (tmpfs, btrfs) is set here clamped;
    /// `isSet` calls that a write, the install fails as .localChanged, the
    /// look that follows hashes the file, finds the record's bytes under
    /// another mtime and asks for the same touch again: for ever, a hash of
    /// the file each round. On a file system that keeps 1800 (tmpfs) the
    /// touch is simply set once.
    func testATouchToATimeTheFileSystemClampsSettles() throws {
        let dir = try SyncScratchDirectory("touch-clamp")
        try dir.mkdir("root/.nsync/tmp")
        let root = dir.url("root")
        let year1800: Int64 = -5_364_662_400 * 1_000_000_000
        // This file system must clamp it (ext4 does; tmpfs does not).
        try dir.write("probe", "p")
        try FileSystem.setModificationTime(dir.url("probe"), year1800)
        let clamped = try FileSystem.status(dir.url("probe")).modificationTime != year1800

        try dir.write("root/f", "the bytes\n")
        guard case .found(let first?) = LocalDisk.look(root: root, path: "f", known: nil) else { return XCTFail("look") }
        installRemote("f", first)
        // n2 touches f to 1800 (its file system keeps that time).
        var touched = first
        touched.mtime = year1800
        var actions = commit("n2", [put("f", touched, base: index.record(at: "f")!.version)]).actions

        var rounds = 0
        var hashes = 0
        while !actions.isEmpty, rounds < 20 {
            rounds += 1
            var next: [SyncAction] = []
            for action in actions {
                switch action {
                case let .setModificationTime(record, expected):
                    let results = LocalDisk.install([.modificationTime(record, expected: expected)], root: root,
                                                    node: "n1", now: 0)
                    for result in results {
                        switch result {
                        case let .installed(path, version, local):
                            next += reconciler.installed(path, version: version, local: local, index: index)
                        case let .failed(path, version, failure):
                            next += reconciler.installFailed(path, version: version, failure, index: index)
                        default: XCTFail("\(result)")
                        }
                    }
                case .observe(let path):
                    let known = reconciler.manifest[path]?.local ?? nil
                    guard case .found(let local) = LocalDisk.look(root: root, path: path, known: known, beforeHashing: { _, _ in
                        hashes += 1
                    }) else { return XCTFail("look") }
                    next += reconciler.observed(path, local, index: index)
                default:
                    break
                }
            }
            if reconciler.hasOutbox { next += commitOutbox().actions }
            actions = next
        }
        XCTAssertTrue(actions.isEmpty, "still asking after \(rounds) rounds (\(hashes) hashes of f): \(actions)")
        XCTAssertLessThanOrEqual(rounds, 3, "a touch (clamped here: \(clamped)) is set once and held, not retried")
    }

    /// The touch race of InstallWriteRaceTests with a record whose mtime is
    /// fresh (a touch elsewhere half a second ago) instead of one from
    /// 2020, so a tolerance around the set time cannot pass.
    func testAWriteJustAfterAFreshTouchIsInstalledIsSeenByTheNextLook() throws {
        try InstallWriteRaceTests.touchRace(rounds: 20_000, label: "touch-fresh") { _ in
            Int64(Date().timeIntervalSince1970 * 1e9) - 500_000_000
        }
    }

}
