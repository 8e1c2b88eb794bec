import Foundation
import XCTest
@testable import NsyncServer

/// `LocalDisk.install` with moves and kept deletions, on a real directory:
/// a deleted file's bytes become a new record's by rename (mode and mtime
/// set), a deleted file at least the keep size is kept under `.nsync/tmp`,
/// and a file the user changed meanwhile is never moved or removed.
final class LocalDiskMoveTests: XCTestCase {
    private var scratch: SyncScratchDirectory!
    private var root: String { scratch.path }
    private var temporary: String { root + "/.nsync/tmp" }
    private let mtime: Int64 = 1_600_000_000_123_456_789

    override func setUpWithError() throws {
        scratch = try SyncScratchDirectory("local-disk-move")
        try scratch.mkdir(".nsync/tmp")
    }

    override func tearDown() {
        scratch = nil
    }

    /// Writes `text` at `path` and returns what the manifest would know of it.
    private func file(_ path: String, _ text: String) throws -> LocalFile {
        try scratch.mkdir((path as NSString).deletingLastPathComponent)
        try scratch.write(path, text)
        let status = try FileSystem.status(root + "/" + path)
        return LocalFile(kind: .file, size: UInt64(status.size), mode: status.mode, mtime: status.modificationTime,
                         hash: SHA256.hash(Array(text.utf8)), inode: status.inode)
    }

    private func record(_ path: String, _ local: LocalFile, version: UInt64) -> FileRecord {
        FileRecord(path: path, version: version, kind: .file, size: local.size, mode: 0o600, mtime: mtime,
                   hash: local.hash, origin: "n1", holders: ["n1"])
    }

    /// `keeping`: how many deleted files may be kept (none by default).
    private func install(_ items: [InstallItem], keeping capacity: Int = 0) -> [InstallResult] {
        LocalDisk.install(items, root: root, node: "n2", now: 0, keep: LocalDisk.Keep(directory: temporary, capacity: capacity))
    }

    private func contents(_ path: String) -> String? {
        FileManager.default.contents(atPath: root + "/" + path).map { String(decoding: $0, as: UTF8.self) }
    }

    func testADeletedFileIsRenamedToTheNewRecordWithItsModeAndMtime() throws {
        let old = try file("photos/a.jpg", "the bytes of a.jpg")
        let target = record("albums/2024/a.jpg", old, version: 9)
        let results = install([.move(LocalMove(source: .deleted(path: "photos/a.jpg", version: 8, expected: old),
                                               record: target, expected: nil))])
        XCTAssertEqual(results.count, 2)
        guard case .installed("photos/a.jpg", 8, nil)? = results.first else { return XCTFail("deletion: \(results)") }
        guard case let .installed("albums/2024/a.jpg", 9, local?)? = results.last else { return XCTFail("record: \(results)") }
        XCTAssertNil(contents("photos/a.jpg"))
        XCTAssertEqual(contents("albums/2024/a.jpg"), "the bytes of a.jpg")
        let status = try FileSystem.status(root + "/albums/2024/a.jpg")
        XCTAssertEqual(status.mode, 0o600)
        XCTAssertEqual(status.modificationTime, mtime)
        XCTAssertEqual(status.inode, old.inode, "renamed, not copied")
        XCTAssertEqual(local.hash, old.hash)
        XCTAssertEqual(local.inode, status.inode)
        XCTAssertEqual(try FileDescriptor.listDirectory(temporary), [], "nothing left in .nsync/tmp")
    }

    func testAFileTheUserChangedBeforeTheMoveStaysAndTheRecordIsFetchedInstead() throws {
        let old = try file("photos/a.jpg", "the bytes of a.jpg")
        let target = record("albums/a.jpg", old, version: 9)
        try scratch.write("photos/a.jpg", "edited by the user, same name")
        let results = install([.move(LocalMove(source: .deleted(path: "photos/a.jpg", version: 8, expected: old),
                                               record: target, expected: nil))])
        guard case .failed("photos/a.jpg", 8, .localChanged)? = results.first else { return XCTFail("deletion: \(results)") }
        guard case .failed("albums/a.jpg", 9, .transient)? = results.last else { return XCTFail("record: \(results)") }
        XCTAssertEqual(contents("photos/a.jpg"), "edited by the user, same name", "the user's edit is kept")
        XCTAssertNil(contents("albums/a.jpg"))
    }

    func testSomethingTheUserPutAtTheNewNameIsLeftAndTheOldNameIsStillDeleted() throws {
        let old = try file("photos/a.jpg", "the bytes of a.jpg")
        let target = record("albums/a.jpg", old, version: 9)
        _ = try file("albums/a.jpg", "the user's own albums/a.jpg")
        let results = install([.move(LocalMove(source: .deleted(path: "photos/a.jpg", version: 8, expected: old),
                                               record: target, expected: nil))])
        guard case .installed("photos/a.jpg", 8, nil)? = results.first else { return XCTFail("deletion: \(results)") }
        guard case .failed("albums/a.jpg", 9, .localChanged)? = results.last else { return XCTFail("record: \(results)") }
        XCTAssertEqual(contents("albums/a.jpg"), "the user's own albums/a.jpg")
    }

    func testADeletedFileIsKeptAndLaterMovedFromThereButAnEmptyOneIsJustRemoved() throws {
        let big = try file("photos/big.raw", String(repeating: "r", count: 4_096))
        let small = try file("photos/small.txt", "")
        let results = install([.remove(path: "photos/big.raw", version: 8, expected: big),
                               .remove(path: "photos/small.txt", version: 8, expected: small)], keeping: 100)
        XCTAssertNil(contents("photos/big.raw"))
        XCTAssertNil(contents("photos/small.txt"))
        guard case let .kept("photos/big.raw", 8, keptPath, content, stamp)? = results.first(where: { $0.path == "photos/big.raw" }) else {
            return XCTFail("\(results)")
        }
        XCTAssertEqual(content, big)
        XCTAssertTrue(keptPath.hasPrefix(temporary + "/"), keptPath)
        guard case .installed("photos/small.txt", 8, nil)? = results.first(where: { $0.path == "photos/small.txt" }) else {
            return XCTFail("an empty file is just removed: \(results)")
        }
        XCTAssertEqual(try FileDescriptor.listDirectory(temporary).count, 1)

        let target = record("raw/big.raw", big, version: 10)
        XCTAssertEqual(stamp.inode, big.inode)
        let moved = install([.move(LocalMove(source: .kept(keptPath, stamp), record: target, expected: nil))])
        guard case .installed("raw/big.raw", 10, _)? = moved.first, moved.count == 1 else { return XCTFail("\(moved)") }
        XCTAssertEqual(contents("raw/big.raw"), String(repeating: "r", count: 4_096))
        XCTAssertEqual(try FileSystem.status(root + "/raw/big.raw").modificationTime, mtime)
        XCTAssertEqual(try FileDescriptor.listDirectory(temporary), [])
    }

    func testARenamedFileKeepsItsOldHashWhileItsStatIsTheOldOnesAndIsHashedOtherwise() throws {
        // The hint's hash is deliberately not the file's: only a look that
        // trusts the hint returns it (nothing was read).
        var old = try file("photos/a.jpg", "the bytes of a.jpg")
        old.hash = [UInt8](repeating: 0xab, count: 32)
        try FileSystem.rename(root + "/photos/a.jpg", to: root + "/a.jpg")
        guard case .found(let same?) = LocalDisk.look(root: root, path: "a.jpg", known: nil, hint: old) else {
            return XCTFail("not found")
        }
        XCTAssertEqual(same.hash, old.hash, "the hint's hash, nothing read")

        try scratch.write("b.jpg", "the bytes of a.jpg")  // same size and bytes, another inode
        guard case .found(let other?) = LocalDisk.look(root: root, path: "b.jpg", known: nil, hint: old) else {
            return XCTFail("not found")
        }
        XCTAssertEqual(other.hash, SHA256.hash(Array("the bytes of a.jpg".utf8)), "another file is hashed")

        try scratch.write("a.jpg", "changed after the rename")
        guard case .found(let changed?) = LocalDisk.look(root: root, path: "a.jpg", known: nil, hint: old) else {
            return XCTFail("not found")
        }
        XCTAssertEqual(changed.hash, SHA256.hash(Array("changed after the rename".utf8)), "a changed file is hashed")
    }

    /// A copy of a sparse file (a disk image copied with `cp -r`) keeps its
    /// holes, and asks for what the source takes on disk, not its length.
    func testALocalCopyOfASparseFileStaysSparse() throws {
        try scratch.mkdir("vm")
        let path = root + "/vm/disk.img"
        let data = TestBytes.pseudoRandom(count: 1 << 20, seed: 9)
        let fd = try FileDescriptor.open(path, .writeOnly, options: [.create, .truncate])
        try fd.closeAfter {
            try fd.write(all: data, at: 8 << 20)
            try fd.truncate(to: 64 << 20)
        }
        var content = [UInt8](repeating: 0, count: 64 << 20)
        content.replaceSubrange((8 << 20)..<((8 << 20) + data.count), with: data)
        let status = try FileSystem.status(path)
        let source = LocalFile(kind: .file, size: UInt64(status.size), mode: status.mode, mtime: status.modificationTime,
                               hash: SHA256.hash(content), inode: status.inode)
        let copy = temporary + "/copy-6-1"
        XCTAssertNil(LocalDisk.copyVerified(root: root, from: "vm/disk.img", to: copy, record: record("backup/disk.img", source, version: 6)))
        XCTAssertTrue(FileManager.default.contents(atPath: copy).map { [UInt8]($0) } == content)
        let copied = try FileDescriptor.open(copy, .readOnly)
        let allocated = try copied.closeAfter { try FileSystem.allocatedBytes(descriptor: copied.rawValue) }
        XCTAssertLessThan(allocated, 4 << 20, "the holes stayed holes")
    }

    func testALocalCopyStandsOnlyWithTheRecordsBytes() throws {
        let source = try file("data/a.bin", String(repeating: "a", count: 10_000))
        let target = record("backup/a.bin", source, version: 5)
        let copy = temporary + "/copy-5-1"
        XCTAssertNil(LocalDisk.copyVerified(root: root, from: "data/a.bin", to: copy, record: target))
        XCTAssertEqual(FileManager.default.contents(atPath: copy).map { [UInt8]($0) }, Array(String(repeating: "a", count: 10_000).utf8))
        let status = try FileSystem.status(copy)
        XCTAssertEqual(status.mode, 0o600)
        XCTAssertEqual(status.modificationTime, mtime)

        // Changed since the manifest saw it (same size): no copy, nothing left.
        try scratch.write("data/a.bin", String(repeating: "b", count: 10_000))
        let failure = LocalDisk.copyVerified(root: root, from: "data/a.bin", to: temporary + "/copy-5-2", record: target)
        XCTAssertNotNil(failure)
        XCTAssertFalse(FileManager.default.fileExists(atPath: temporary + "/copy-5-2"))
        // Gone, or a symlink out of the tree: no copy.
        try FileSystem.removeFile(root + "/data/a.bin")
        try FileManager.default.createSymbolicLink(atPath: root + "/data/a.bin", withDestinationPath: copy)
        XCTAssertNotNil(LocalDisk.copyVerified(root: root, from: "data/a.bin", to: temporary + "/copy-5-3", record: target))
        XCTAssertFalse(FileManager.default.fileExists(atPath: temporary + "/copy-5-3"))
    }

    func testNoMoreFilesAreKeptThanTheCapacitySays() throws {
        let files = try (0..<5).map { try file("d/f\($0).txt", "file \($0)") }
        let results = install(files.enumerated().map { .remove(path: "d/f\($0.offset).txt", version: 3, expected: $0.element) },
                              keeping: 3)
        let kept = results.filter { if case .kept = $0 { true } else { false } }
        let removed = results.filter { if case .installed(_, 3, nil) = $0 { true } else { false } }
        XCTAssertEqual(kept.count, 3, "\(results)")
        XCTAssertEqual(removed.count, 2, "\(results)")
        XCTAssertEqual(try FileDescriptor.listDirectory(temporary).count, 3)
        XCTAssertEqual(try FileDescriptor.listDirectory(root + "/d"), [], "every file is gone from its name")
    }

    func testAKeptCopyWrittenToSinceItWasKeptIsNotInstalled() throws {
        // A program that still had the file open rewrites it in place (same
        // size, mtime put back) while it waits in .nsync/tmp.
        let text = String(repeating: "k", count: 4_096)
        let big = try file("db/table.dat", text)
        let results = install([.remove(path: "db/table.dat", version: 8, expected: big)], keeping: 100)
        guard case let .kept(_, _, keptPath, _, stamp)? = results.first else { return XCTFail("\(results)") }
        usleep(20_000)  // a later ctime
        let fd = try FileDescriptor.open(keptPath, .writeOnly)
        try fd.closeAfter { try fd.write(all: Array(String(repeating: "X", count: 4_096).utf8), at: 0) }
        try FileSystem.setModificationTime(keptPath, stamp.modificationTime)
        let moved = install([.move(LocalMove(source: .kept(keptPath, stamp), record: record("db/moved.dat", big, version: 9),
                                             expected: nil))])
        guard case .failed("db/moved.dat", 9, .transient)? = moved.first else { return XCTFail("\(moved)") }
        XCTAssertNil(contents("db/moved.dat"), "bytes that are not the record's were installed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: keptPath), "the changed copy is dropped")
    }

    func testAFileWithOtherHardLinksIsNeitherKeptNorMoved() throws {
        let text = String(repeating: "h", count: 4_096)
        let linked = try file("a/linked.bin", text)
        XCTAssertEqual(link(root + "/a/linked.bin", root + "/other-name.bin"), 0)
        let before = try FileSystem.status(root + "/other-name.bin")
        let removed = install([.remove(path: "a/linked.bin", version: 8, expected: linked)], keeping: 100)
        guard case .installed("a/linked.bin", 8, nil)? = removed.first else { return XCTFail("not kept: \(removed)") }
        XCTAssertEqual(try FileDescriptor.listDirectory(temporary), [])

        XCTAssertEqual(link(root + "/other-name.bin", root + "/a/linked.bin"), 0)
        let again = try FileSystem.status(root + "/a/linked.bin")
        let old = LocalFile(kind: .file, size: linked.size, mode: again.mode, mtime: again.modificationTime,
                            hash: linked.hash, inode: again.inode)
        let results = install([.move(LocalMove(source: .deleted(path: "a/linked.bin", version: 10, expected: old),
                                               record: record("b/moved.bin", old, version: 11), expected: nil))])
        guard case .installed("a/linked.bin", 10, nil)? = results.first else { return XCTFail("deletion: \(results)") }
        guard case .failed("b/moved.bin", 11, .transient)? = results.last else { return XCTFail("record: \(results)") }
        let after = try FileSystem.status(root + "/other-name.bin")
        XCTAssertEqual(after.mode, before.mode, "the other name's mode is untouched")
        XCTAssertEqual(after.modificationTime, before.modificationTime, "the other name's mtime is untouched")
        XCTAssertNil(contents("b/moved.bin"))
    }

    /// A conflict copy renames the very bytes the look saw; a file written
    /// since is left where it is, reported as changed again (routine: its
    /// look decides again), not as a failure to show in status.
    func testAConflictCopyTakesTheBytesSeenAndLeavesAFileChangedSinceInPlace() throws {
        let mine = try file("docs/a.txt", "my edit")
        let results = install([.conflict(path: "docs/a.txt", expected: mine)])
        guard case let .conflictCopied("docs/a.txt", copy, local?)? = results.first, results.count == 1 else {
            return XCTFail("\(results)")
        }
        XCTAssertTrue(copy.hasPrefix("docs/a.sync-conflict-") && copy.hasSuffix("-n2.txt"), copy)
        XCTAssertEqual(contents(copy), "my edit")
        XCTAssertNil(contents("docs/a.txt"))
        XCTAssertEqual(local.hash, mine.hash)

        let seen = try file("docs/b.txt", "what the look saw")
        try scratch.write("docs/b.txt", "written again since, longer")
        let again = install([.conflict(path: "docs/b.txt", expected: seen)])
        guard case .conflictChangedAgain("docs/b.txt")? = again.first, again.count == 1 else { return XCTFail("\(again)") }
        XCTAssertEqual(contents("docs/b.txt"), "written again since, longer", "the newer bytes stay in place")
        XCTAssertEqual(try FileDescriptor.listDirectory(root + "/docs").sorted(), [copy.dropFirst(5).description, "b.txt"])
    }

    func testAKeptCopyThatIsGoneFailsAsTransient() throws {
        let old = try file("a.bin", "bytes")
        let target = record("b.bin", old, version: 3)
        let stamp = try FileSystem.status(root + "/a.bin")
        let results = install([.move(LocalMove(source: .kept(temporary + "/kept-1-1", stamp), record: target, expected: nil))])
        guard case .failed("b.bin", 3, .transient)? = results.first else { return XCTFail("\(results)") }
        XCTAssertNil(contents("b.bin"))
    }
}

private extension InstallResult {
    var path: String {
        switch self {
        case .installed(let path, _, _), .failed(let path, _, _), .conflictCopied(let path, _, _),
             .conflictFailed(let path, _), .conflictChangedAgain(let path), .kept(let path, _, _, _, _): path
        }
    }
}
