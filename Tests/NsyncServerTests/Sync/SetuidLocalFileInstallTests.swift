import Foundation
import XCTest
@testable import NsyncServer

/// A file with set-user-ID on this node's disk (its owner's chmod u+s here,
/// or an install by an nsyncd from before setuid was masked) is looked at
/// without the bit, and that masked look is what every install expects:
/// the install must still recognise the file (only the synced bits count).
final class SetuidLocalFileInstallTests: XCTestCase {
    private func setuidFile() throws -> (SyncScratchDirectory, String, LocalFile) {
        let dir = try SyncScratchDirectory("setuid-install")
        try dir.mkdir("root/.nsync/tmp")
        let root = dir.url("root")
        try dir.write("root/tool", "#!/bin/sh\nid\n", mode: 0o755)
        XCTAssertEqual(chmod(root + "/tool", 0o4755), 0)
        guard case .found(let local?) = LocalDisk.look(root: root, path: "tool", known: nil) else {
            XCTFail("look failed")
            throw SystemError(errno: EIO, operation: "look", path: root + "/tool")
        }
        XCTAssertEqual(local.mode, 0o755, "the look masks the bit")
        return (dir, root, local)
    }

    func testADeletionFromElsewhereRemovesALocalSetuidFile() throws {
        let (dir, root, local) = try setuidFile()
        _ = dir
        let results = LocalDisk.install([.remove(path: "tool", version: 7, expected: local)], root: root, node: "n2", now: 0)
        guard results.count == 1, case .installed("tool", 7, nil) = results[0] else {
            return XCTFail("the deletion was not carried out: \(results) (each .localChanged is looked at again and retried, for ever)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/tool"))
    }

    func testAModeChangeFromElsewhereReachesALocalSetuidFile() throws {
        let (dir, root, local) = try setuidFile()
        _ = dir
        let record = FileRecord(path: "tool", version: 8, kind: .file, size: local.size, mode: 0o700, mtime: local.mtime,
                                hash: local.hash, origin: "n1", holders: ["n1"])
        let results = LocalDisk.install([.modificationTime(record, expected: local)], root: root, node: "n2", now: 0)
        guard results.count == 1, case .installed("tool", 8, _) = results[0] else {
            return XCTFail("the mode change was not carried out: \(results)")
        }
        XCTAssertEqual(try FileSystem.status(root + "/tool").mode, 0o700)
    }

    func testMatchesComparesOnlyTheBitsThatSync() throws {
        let (dir, root, local) = try setuidFile()
        _ = dir
        XCTAssertTrue(LocalDisk.matches(root + "/tool", local), "the file is exactly what was looked at")
    }
}
