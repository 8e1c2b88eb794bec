import XCTest
@testable import NsyncServer

/// The index's shape rule: whatever the order of concurrent changes, it
/// never holds an entry under a file or symlink, nor a file or symlink over
/// a directory that still has live entries.
final class FileIndexShapeTests: XCTestCase {
    let hashA = [UInt8](repeating: 0xAA, count: 32)
    var index = FileIndex()

    func file(_ path: String, base: UInt64) -> IndexChange {
        .put(.file(path, size: 10, mode: 0o644, mtime: 1, hash: hashA, base: base))
    }

    func directory(_ path: String, base: UInt64) -> IndexChange {
        .put(.directory(path, mode: 0o755, mtime: 1, base: base))
    }

    @discardableResult
    func apply(_ origin: NodeName, at entry: UInt64, _ changes: IndexChange...) -> [ChangeOutcome] {
        index.apply(IndexCommand(origin: origin, changes: changes), at: entry)
    }

    /// No live record has a live file or symlink above it.
    func assertIsATree(file: StaticString = #filePath, line: UInt = #line) {
        for record in index where record.kind.isLive {
            XCTAssertNil(index.nonDirectoryAncestor(of: record.path), "\(record.path) under a file", file: file, line: line)
        }
    }

    func testEntryUnderAFileIsRejectedWithTheFilesRecord() throws {
        apply("n1", at: 1, file("d", base: 0))
        let outcomes = apply("n2", at: 2, directory("d", base: 0), file("d/x", base: 0), file("d/y/z", base: 0))
        let fileRecord = try XCTUnwrap(index.record(at: "d"))
        XCTAssertEqual(outcomes, [.rejected(current: fileRecord), .rejected(current: fileRecord), .rejected(current: fileRecord)])
        XCTAssertNil(index.record(at: "d/x"))
        assertIsATree()
    }

    func testEntryUnderASymlinkIsRejected() {
        apply("n1", at: 1, .put(PutChange(path: "l", kind: .symlink, size: 0, mode: 0o777, mtime: 1, hash: [],
                                          target: "elsewhere", baseVersion: 0)))
        guard case .rejected(let current) = apply("n2", at: 2, file("l/x", base: 0))[0] else {
            return XCTFail("a file under a symlink got in")
        }
        XCTAssertEqual(current.path, "l")
    }

    func testFileOverADirectoryWithLiveEntriesIsRejectedEvenOnTheCurrentBase() throws {
        apply("n1", at: 1, directory("d", base: 0), file("d/x", base: 0))
        // n2 removed what it saw of d and made d a file, but n1 added d/x.
        let outcomes = apply("n2", at: 2, file("d", base: 1))
        XCTAssertEqual(outcomes, [.rejected(current: try XCTUnwrap(index.record(at: "d")))])
        XCTAssertEqual(index.record(at: "d")?.kind, .directory)
        assertIsATree()
    }

    func testFileReplacesADirectoryOnceItsEntriesAreDeleted() {
        apply("n1", at: 1, directory("d", base: 0), file("d/x", base: 0))
        let outcomes = apply("n1", at: 2, .put(.deletion("d/x", mtime: 2, base: 1)), file("d", base: 1))
        XCTAssertEqual(outcomes, [.accepted(version: 2), .accepted(version: 2)])
        XCTAssertEqual(index.record(at: "d")?.kind, .file)
        // And back: a directory with a file in it over the file.
        XCTAssertEqual(apply("n1", at: 3, directory("d", base: 2), file("d/y", base: 0)),
                       [.accepted(version: 3), .accepted(version: 3)])
        assertIsATree()
    }

    func testFileOverADeletedDirectoryWhoseEntryWonIsRejected() throws {
        apply("n1", at: 1, directory("d", base: 0), file("d/x", base: 0))
        // n1 deletes d and d/x; n2's edit of d/x beat the delete; then n1 puts a file at d.
        XCTAssertEqual(apply("n2", at: 2, .put(.file("d/x", size: 20, mode: 0o644, mtime: 2, hash: [UInt8](repeating: 0xBB, count: 32),
                                                     base: 1))), [.accepted(version: 2)])
        let outcomes = apply("n1", at: 3, .put(.deletion("d/x", mtime: 3, base: 1)), .put(.deletion("d", mtime: 3, base: 1)),
                             file("d", base: 3))
        XCTAssertEqual(outcomes[0], .rejected(current: try XCTUnwrap(index.record(at: "d/x"))), "the edit beat the delete")
        XCTAssertEqual(outcomes[1], .accepted(version: 3))
        guard case .rejected(let current) = outcomes[2] else { return XCTFail("a file got in over the live d/x") }
        XCTAssertEqual(current.path, "d")
        XCTAssertEqual(current.kind, .directory)
        XCTAssertEqual(index.record(at: "d/x")?.kind, .file)
        assertIsATree()
    }

    /// The shape of simulation seed 216140398904435649: d/e was deleted while
    /// an edit of d/e/z won, and then a file was put at d. d/e has no live
    /// record, yet d is still a directory (d/e/z is in it).
    func testFileOverADirectoryWhoseDeletedSubdirectoryHoldsALiveEntryIsRejected() throws {
        apply("n1", at: 1, directory("d", base: 0), directory("d/e", base: 0), file("d/e/z", base: 0))
        XCTAssertEqual(apply("n3", at: 2, .put(.file("d/e/z", size: 20, mode: 0o644, mtime: 2,
                                                     hash: [UInt8](repeating: 0xBB, count: 32), base: 1))),
                       [.accepted(version: 2)])
        XCTAssertEqual(apply("n2", at: 3, .put(.deletion("d", mtime: 3, base: 1)), .put(.deletion("d/e", mtime: 3, base: 1))),
                       [.accepted(version: 3), .accepted(version: 3)])
        XCTAssertTrue(index.hasLiveEntries(under: "d"))
        XCTAssertTrue(index.hasLiveEntries(under: "d/e"))
        guard case .rejected(let current) = apply("n2", at: 4, file("d", base: 3))[0] else {
            return XCTFail("a file got in over d, with d/e/z live below it")
        }
        XCTAssertEqual(current.path, "d")
        XCTAssertEqual(current.kind, .directory)
        assertIsATree()
        // The counts survive a snapshot, and drop once d/e/z is deleted too:
        // then the file gets in.
        index = try FileIndex(snapshotData: index.snapshotData())
        XCTAssertTrue(index.hasLiveEntries(under: "d"))
        XCTAssertEqual(apply("n2", at: 5, .put(.deletion("d/e/z", mtime: 5, base: 2)), file("d", base: 3)),
                       [.accepted(version: 5), .accepted(version: 5)])
        XCTAssertFalse(index.hasLiveEntries(under: "d"))
        XCTAssertFalse(index.hasLiveEntries(under: "d/e"))
        assertIsATree()
    }

    /// A live directory stops the count from climbing: d's count is its one
    /// present child, however much is under it.
    func testPresentEntriesAreCountedOncePerChild() throws {
        apply("n1", at: 1, directory("d", base: 0), directory("d/e", base: 0), file("d/e/x", base: 0),
              file("d/e/y", base: 0), file("d/f", base: 0))
        XCTAssertEqual(index.liveChildren[PathKey("d")], 2)
        XCTAssertEqual(index.liveChildren[PathKey("d/e")], 2)
        apply("n1", at: 2, .put(.deletion("d/e", mtime: 2, base: 1)))
        XCTAssertEqual(index.liveChildren[PathKey("d")], 2, "d/e is still there: its files are live")
        apply("n1", at: 3, .put(.deletion("d/e/x", mtime: 3, base: 1)), .put(.deletion("d/e/y", mtime: 3, base: 1)))
        XCTAssertEqual(index.liveChildren[PathKey("d")], 1)
        XCTAssertNil(index.liveChildren[PathKey("d/e")])
        XCTAssertEqual(try FileIndex(snapshotData: index.snapshotData()), index)
    }

    func testLiveEntryCountsSurviveASnapshot() throws {
        apply("n1", at: 1, directory("d", base: 0), file("d/x", base: 0), file("top", base: 0))
        let restored = try FileIndex(snapshotData: index.snapshotData())
        XCTAssertEqual(restored, index)
        index = restored
        XCTAssertEqual(apply("n2", at: 2, file("d", base: 1)).count, 1)
        XCTAssertEqual(index.record(at: "d")?.kind, .directory, "the restored index still knows d has a live entry")
    }
}
