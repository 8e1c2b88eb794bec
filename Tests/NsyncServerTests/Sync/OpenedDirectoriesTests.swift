import Foundation
import XCTest
@testable import NsyncServer

/// Installing into a read-only directory as a daemon that is not root
/// (`LocalDisk.inWritableDirectory`), and putting a directory's mode back
/// after a node was killed with it open (`OpenedDirectories`). Root passes
/// every permission check, so as root the calls run with an unprivileged
/// file-system uid (setfsuid is per thread on Linux).
final class OpenedDirectoriesTests: XCTestCase {
    static let nobody: uid_t = 65534

    /// Runs `body` as the unprivileged `nobody` for file-system checks when
    /// the test runs as root; as itself otherwise (already unprivileged).
    func asUnprivileged<T>(_ body: () throws -> T) throws -> T {
        guard getuid() == 0 else { return try body() }
        typealias SetFSUID = @convention(c) (UInt32) -> Int32
        guard let symbol = dlsym(nil, "setfsuid") else { throw XCTSkip("no setfsuid in libc") }
        let setfsuid = unsafeBitCast(symbol, to: SetFSUID.self)
        _ = setfsuid(Self.nobody)
        defer { _ = setfsuid(0) }
        return try body()
    }

    /// A synced root with `.nsync`, owned by whoever `asUnprivileged` acts as.
    func makeRoot() throws -> SyncScratchDirectory {
        let dir = try SyncScratchDirectory("opened")
        try dir.mkdir(".nsync")
        try dir.mkdir("ro")
        if getuid() == 0 {
            for path in [dir.path, dir.url(".nsync"), dir.url("ro")] { chown(path, Self.nobody, Self.nobody) }
        }
        chmod(dir.url("ro"), 0o555)
        return dir
    }

    func mode(_ path: String) -> mode_t {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_mode & 0o7777 : 0
    }

    func testAnEntryIsAddedToAReadOnlyDirectoryWhichKeepsItsMode() throws {
        let dir = try makeRoot()
        let target = dir.url("ro/new")
        try asUnprivileged {
            XCTAssertThrowsError(try FileSystem.makeDirectory(target), "the directory must refuse a plain mkdir")
            try LocalDisk.inWritableDirectory(of: target, root: dir.path) { try FileSystem.makeDirectory(target) }
        }
        XCTAssertTrue(FileDescriptor.isDirectory(target))
        XCTAssertEqual(mode(dir.url("ro")), 0o555, "the mode is put back")
        XCTAssertTrue(FileDescriptor.exists(OpenedDirectories.path(root: dir.path)), "noted while open")
        OpenedDirectories.clear(root: dir.path)
        XCTAssertFalse(FileDescriptor.exists(OpenedDirectories.path(root: dir.path)))
    }

    func testADirectoryLeftOpenByAKilledNodeGetsItsModeBackAtStartUp() throws {
        let dir = try makeRoot()
        try dir.mkdir("other")
        chmod(dir.url("other"), 0o500)
        // The node noted both and opened them, then was killed; the user
        // has since changed the second one's mode: that one is theirs.
        try OpenedDirectories.note(dir.url("ro"), mode: 0o555, root: dir.path)
        try OpenedDirectories.note(dir.url("other"), mode: 0o500, root: dir.path)
        chmod(dir.url("ro"), 0o755)
        chmod(dir.url("other"), 0o750)
        XCTAssertEqual(OpenedDirectories.restore(root: dir.path), [dir.url("ro")])
        XCTAssertEqual(mode(dir.url("ro")), 0o555)
        XCTAssertEqual(mode(dir.url("other")), 0o750, "a mode someone set since is left alone")
        XCTAssertFalse(FileDescriptor.exists(OpenedDirectories.path(root: dir.path)))
        XCTAssertEqual(OpenedDirectories.restore(root: dir.path), [], "nothing noted: nothing to do")
    }

    /// PATH renamed away under the node: an install below it fails, and
    /// makes nothing where PATH was (the node stops at its next check).
    func testAnInstallNeverMakesPathAgain() throws {
        let dir = try SyncScratchDirectory("opened")
        let root = dir.url("root")
        try dir.mkdir("root/.nsync")
        XCTAssertEqual(rename(root, dir.url("moved")), 0)
        let record = FileRecord(path: "a/b", version: 3, kind: .directory, mode: 0o755, mtime: 0, origin: "n1", holders: ["n1"])
        let results = LocalDisk.install([.directory(record, expected: nil)], root: root, node: "n2", now: 0)
        guard case .failed(path: "a/b", version: 3, .transient)? = results.first else { return XCTFail("\(results)") }
        XCTAssertFalse(FileDescriptor.exists(root), "PATH made again")
    }

    func testANameWithANewlineIsPutBackToo() throws {
        let dir = try makeRoot()
        try dir.mkdir("two\nlines")
        try OpenedDirectories.note(dir.url("two\nlines"), mode: 0o555, root: dir.path)
        chmod(dir.url("two\nlines"), 0o755)
        XCTAssertEqual(OpenedDirectories.restore(root: dir.path), [dir.url("two\nlines")])
        XCTAssertEqual(mode(dir.url("two\nlines")), 0o555)
    }
}
