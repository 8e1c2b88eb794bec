import Foundation
import XCTest
@testable import NsyncServer

/// A symlink a user puts where the tree has a directory: nothing is looked
/// at, installed or removed through it (it points outside PATH).
final class SymlinkOnTheWayTests: XCTestCase {
    func testNothingIsLookedAtInstalledOrRemovedThroughASymlinkedDirectory() throws {
        let dir = try SyncScratchDirectory("onway")
        try dir.mkdir("root/.nsync/tmp")
        try dir.mkdir("outside")
        try dir.write("outside/x", "not synced")
        let root = dir.url("root")
        XCTAssertEqual(symlink(dir.url("outside"), root + "/docs"), 0)
        XCTAssertEqual(FileSystem.nonDirectoryOnTheWay(root: root, path: "docs/x"), root + "/docs")
        XCTAssertNil(FileSystem.nonDirectoryOnTheWay(root: root, path: "docs"))
        XCTAssertNil(FileSystem.nonDirectoryOnTheWay(root: root, path: "new/deeper/x"), "missing parents are made")

        guard case .found(nil) = LocalDisk.look(root: root, path: "docs/x", known: nil) else {
            return XCTFail("a file below a symlink was looked at")
        }
        let outsideX = try XCTUnwrap(try FileSystem.status(dir.url("outside/x")))
        let known = LocalFile(kind: .file, size: UInt64(outsideX.size), mode: outsideX.mode, mtime: outsideX.modificationTime,
                              hash: [], inode: outsideX.inode)
        try dir.write("root/.nsync/tmp/fetched", "from the cluster")
        let record = FileRecord(path: "docs/new", version: 7, kind: .file, size: 16, mode: 0o644, mtime: 0, hash: [],
                                origin: "n1", holders: ["n1"])
        let results = LocalDisk.install([
            .file(Fetcher.Fetched(record: record, expected: nil, temporaryPath: root + "/.nsync/tmp/fetched")),
            .remove(path: "docs/x", version: 8, expected: known),
        ], root: root, node: "n2", now: 0)
        guard results.count == 2, case .failed("docs/new", 7, .localChanged) = results[0],
              case .failed("docs/x", 8, .localChanged) = results[1] else { return XCTFail("\(results)") }
        XCTAssertFalse(FileDescriptor.exists(dir.url("outside/new")), "installed outside PATH")
        XCTAssertEqual(try String(contentsOfFile: dir.url("outside/x"), encoding: .utf8), "not synced", "removed outside PATH")
    }
}
