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
        // Written long ago: a hash in the tick of the write is not vouched for by a stat (RacyHashTests).
        try FileSystem.setModificationTime(dir.url("tool"), 1_600_000_000_000_000_000)
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

    /// A scratch PATH (kept alive by the returned directory) with a setgid `team` folder.
    private func setgidTeam(_ label: String) throws -> (SyncScratchDirectory, String) {
        let dir = try SyncScratchDirectory(label)
        try dir.mkdir("root/.nsync/tmp")
        try dir.mkdir("root/team")
        XCTAssertEqual(chmod(dir.url("root/team"), 0o2775), 0)
        return (dir, dir.url("root"))
    }

    func testADirectorysOwnSetgidBitStaysWhenItsModeSyncs() throws {
        let (dir, root) = try setgidTeam("modebits-setgid")
        defer { _ = dir }
        guard case .found(let looked?) = LocalDisk.look(root: root, path: "team", known: nil) else { return XCTFail("look failed") }
        let results = LocalDisk.install([.directory(record("team", kind: .directory, mode: 0o750), expected: looked)],
                                        root: root, node: "n2", now: 0)
        guard results.count == 1, case .installed("team", 4, let local?) = results[0] else { return XCTFail("\(results)") }
        XCTAssertEqual(try FileSystem.status(root + "/team").mode, 0o2750)
        XCTAssertEqual(local.mode, 0o750)
    }

    /// A directory made by an install inside a setgid directory (a team's
    /// shared folder) keeps the setgid bit the kernel gives it, as any
    /// mkdir there has it (and as parents made on the way have it).
    func testADirectoryInstalledInASetgidDirectoryKeepsTheBitItsParentGivesIt() throws {
        let (dir, root) = try setgidTeam("modebits-setgid-child")
        defer { _ = dir }
        let record = FileRecord(path: "team/sub", version: 3, kind: .directory, mode: 0o775,
                                mtime: 1_000_000_000_000_000_000, origin: "n1", holders: ["n1"])
        let results = LocalDisk.install([.directory(record, expected: nil)], root: root, node: "n2", now: 0)
        guard results.count == 1, case .installed = results[0] else { return XCTFail("\(results)") }
        // As `mkdir team/sub` by anyone on this node would have it:
        XCTAssertEqual(try FileSystem.status(root + "/team/sub").mode, 0o2775)
    }

    /// Any change from elsewhere (here a touch) leaves a file without its
    /// local setuid bit, whether it is changed in place or, having other
    /// names, replaced by a copy: as a new version would.
    func testATouchFromElsewhereTakesALocalSetuidBitOffWithOrWithoutOtherNames() throws {
        for hardLinked in [false, true] {
            let dir = try SyncScratchDirectory("modebits-touch-setuid")
            try dir.mkdir("root/.nsync/tmp")
            let root = dir.url("root")
            try dir.write("root/tool", "#!/bin/sh\nid\n", mode: 0o755)
            XCTAssertEqual(chmod(root + "/tool", 0o4755), 0)
            if hardLinked { XCTAssertEqual(link(root + "/tool", root + "/tool-link"), 0) }
            guard case .found(let local?) = LocalDisk.look(root: root, path: "tool", known: nil) else { return XCTFail("look") }
            let record = FileRecord(path: "tool", version: 9, kind: .file, size: local.size, mode: 0o755,
                                    mtime: local.mtime + 5_000_000_000, hash: local.hash, origin: "n1", holders: ["n1"])
            let results = LocalDisk.install([.modificationTime(record, expected: local)], root: root, node: "n2", now: 0)
            guard results.count == 1, case .installed = results[0] else { return XCTFail("\(results)") }
            XCTAssertEqual(try FileSystem.status(root + "/tool").mode, 0o755, "hard-linked: \(hardLinked)")
            XCTAssertEqual(try FileSystem.status(root + "/tool").modificationTime, record.mtime)
        }
    }
}
