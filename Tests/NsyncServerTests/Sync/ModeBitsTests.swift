import Foundation
import XCTest
@testable import NsyncServer

/// Set-user-ID and set-group-ID never sync: not announced from a look or a
/// scan, not installed from a record that carries them (an older or a
/// hostile node's), and a directory's own setgid bit stays when its mode
/// syncs. The sticky bit syncs.
final class ModeBitsTests: XCTestCase {
    private func record(_ path: String, kind: FileKind, mode: UInt32) -> FileRecord {
        FileRecord(path: path, version: 4, kind: kind, mode: mode, mtime: 1_000_000_000_000_000_000, origin: "n1", holders: ["n1"])
    }

    func testALookAndAScanSeeOnlyTheBitsThatSync() throws {
        let dir = try SyncScratchDirectory("modebits-look")
        try dir.write("tool", "#!/bin/sh\n")
        try dir.mkdir("shared")
        XCTAssertEqual(chmod(dir.url("tool"), 0o6755), 0)
        XCTAssertEqual(chmod(dir.url("shared"), 0o3777), 0)
        guard case .found(let tool?) = LocalDisk.look(root: dir.path, path: "tool", known: nil),
              case .found(let shared?) = LocalDisk.look(root: dir.path, path: "shared", known: nil) else {
            return XCTFail("looks failed")
        }
        XCTAssertEqual(tool.mode, 0o755)
        XCTAssertEqual(shared.mode, 0o1777)
        let scan = try DirectoryScanner.scan(root: dir.path, ignore: .defaults)
        XCTAssertEqual(scan.entries.map(\.mode), [0o1777, 0o755], "\(scan.entries.map(\.path))")
        XCTAssertTrue(LocalDisk.unchanged(scan.entries[1], tool), "a scan agrees with the look")
    }

    func testARecordCarryingSetuidIsInstalledWithoutItAndCountsAsHeld() throws {
        let dir = try SyncScratchDirectory("modebits-install")
        try dir.mkdir("root/.nsync/tmp")
        let root = dir.url("root")
        let hostile = record("d", kind: .directory, mode: 0o6755)
        let results = LocalDisk.install([.directory(hostile, expected: nil)], root: root, node: "n2", now: 0)
        guard results.count == 1, case .installed("d", 4, let local?) = results[0] else { return XCTFail("\(results)") }
        XCTAssertEqual(try FileSystem.status(root + "/d").mode, 0o755)
        XCTAssertEqual(local.mode, 0o755)
        XCTAssertTrue(local.sameContent(as: hostile), "held as it is: not fetched or announced again")
        XCTAssertEqual(hostile.modeToInstall, 0o755)
        XCTAssertEqual(record("s", kind: .directory, mode: 0o1777).modeToInstall, 0o1777)
    }

    func testADirectorysOwnSetgidBitStaysWhenItsModeSyncs() throws {
        let dir = try SyncScratchDirectory("modebits-setgid")
        try dir.mkdir("root/.nsync/tmp")
        try dir.mkdir("root/team")
        let root = dir.url("root")
        XCTAssertEqual(chmod(root + "/team", 0o2775), 0)
        guard case .found(let looked?) = LocalDisk.look(root: root, path: "team", known: nil) else { return XCTFail("look failed") }
        let results = LocalDisk.install([.directory(record("team", kind: .directory, mode: 0o750), expected: looked)],
                                        root: root, node: "n2", now: 0)
        guard results.count == 1, case .installed("team", 4, let local?) = results[0] else { return XCTFail("\(results)") }
        XCTAssertEqual(try FileSystem.status(root + "/team").mode, 0o2750)
        XCTAssertEqual(local.mode, 0o750)
    }
}
