import Foundation
import XCTest
@testable import NsyncServer

/// Setting a symlink's own mtime for a touch -h made on another node: on
/// the link, never what it points to; not over a touch made here since the
/// look; not through a hard link's other names.
final class LinkTimeTests: XCTestCase {
    private func link(_ dir: SyncScratchDirectory, _ name: String, to target: String) throws -> LocalFile {
        XCTAssertEqual(symlink(target, dir.url("root/" + name)), 0)
        let status = try FileSystem.status(dir.url("root/" + name))
        return LocalFile(kind: .symlink, mode: 0, mtime: status.modificationTime, target: target, inode: status.inode)
    }

    private func record(_ path: String, target: String, mtime: Int64) -> FileRecord {
        FileRecord(path: path, version: 9, kind: .symlink, mtime: mtime, target: target, origin: "n1", holders: ["n1"])
    }

    /// A touch of a symlink elsewhere sets this node's link's mtime, never
    /// that of what it points to (which may be outside PATH).
    func testASymlinksMtimeIsSetOnTheLinkNeverOnWhatItPointsTo() throws {
        let dir = try SyncScratchDirectory("linktime")
        try dir.mkdir("root/.nsync/tmp")
        try dir.mkdir("outside")
        try dir.write("outside/x", "not synced")
        let root = dir.url("root")
        let target = dir.url("outside/x")
        let outsideBefore = try FileSystem.status(target).modificationTime
        let expected = try link(dir, "l", to: target)
        let mtime: Int64 = 1_000_000_000_123_456_789
        let results = LocalDisk.install([.modificationTime(record("l", target: target, mtime: mtime), expected: expected)],
                                        root: root, node: "n2", now: 0)
        guard results.count == 1, case .installed("l", 9, let local?) = results[0] else { return XCTFail("\(results)") }
        XCTAssertEqual(local, LocalFile(kind: .symlink, mode: 0, mtime: mtime, target: target, inode: expected.inode))
        XCTAssertEqual(try FileSystem.status(root + "/l").modificationTime, mtime)
        XCTAssertEqual(try FileSystem.status(root + "/l").kind, .symlink, "the link itself, not replaced by anything")
        XCTAssertEqual(try FileSystem.status(target).modificationTime, outsideBefore, "what the link points to is untouched")
    }

    /// A touch -h here after the look is the user's: the remote time does not overwrite it.
    func testALinkTouchedHereSinceTheLookKeepsItsTime() throws {
        let dir = try SyncScratchDirectory("linktouched")
        try dir.mkdir("root/.nsync/tmp")
        let root = dir.url("root")
        let looked = try link(dir, "l", to: "somewhere")
        try FileSystem.setModificationTime(root + "/l", 2_000_000_000_000_000_000, noFollow: true)
        let results = LocalDisk.install([.modificationTime(record("l", target: "somewhere", mtime: 1_000), expected: looked)],
                                        root: root, node: "n2", now: 0)
        guard results.count == 1, case .failed("l", 9, .localChanged) = results[0] else { return XCTFail("\(results)") }
        XCTAssertEqual(try FileSystem.status(root + "/l").modificationTime, 2_000_000_000_000_000_000)
    }

    /// cp -a keeps hard links, symlinks' too: the other name keeps its time.
    func testAHardLinkedSymlinkGetsALinkOfItsOwn() throws {
        let dir = try SyncScratchDirectory("linkhard")
        try dir.mkdir("root/.nsync/tmp")
        let root = dir.url("root")
        let first = try link(dir, "a", to: "target")
        XCTAssertEqual(linkat(AT_FDCWD, root + "/a", AT_FDCWD, root + "/b", 0), 0, "a hard link to the symlink itself")
        let looked = LocalFile(kind: .symlink, mode: 0, mtime: first.mtime, target: "target",
                               inode: try FileSystem.status(root + "/a").inode)
        let results = LocalDisk.install([.modificationTime(record("a", target: "target", mtime: 1_000), expected: looked)],
                                        root: root, node: "n2", now: 0)
        guard results.count == 1, case .installed("a", 9, let local?) = results[0] else { return XCTFail("\(results)") }
        XCTAssertEqual(local.mtime, 1_000)
        XCTAssertEqual(try FileSystem.status(root + "/a").modificationTime, 1_000)
        XCTAssertEqual(try FileSystem.readLink(root + "/a"), "target")
        XCTAssertEqual(try FileSystem.status(root + "/b").modificationTime, first.mtime, "the other name is untouched")
        XCTAssertNotEqual(try FileSystem.status(root + "/a").inode, try FileSystem.status(root + "/b").inode)
    }
}
