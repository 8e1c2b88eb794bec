import Foundation
import XCTest
@testable import NsyncServer

/// The kernel stamps writes from a coarse clock (a 1-10 ms tick, before
/// Linux 6.13's fine-grained stamps): a file rewritten at its size in the
/// tick it was hashed in keeps its whole stat. A hash taken that close to
/// the mtime is not vouched for by the stat ("racy git"): the next look
/// hashes again, a scan looks, an install checks the bytes. The tick is
/// simulated by setting the rewritten file's mtime back to the first one.
final class RacyHashTests: XCTestCase {
    private let content = Array("first bytes\n".utf8)
    private let rewritten = Array("later bytes\n".utf8)  // the same size

    /// Writes `bytes` over `path` in place (same inode) and sets `mtime`.
    private func overwrite(_ path: String, _ bytes: [UInt8], mtime: Int64) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SystemError(errno: errno, operation: "open", path: path) }
        defer { close(fd) }
        XCTAssertEqual(bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }, bytes.count)
        try FileSystem.setModificationTime(descriptor: fd, mtime)
    }

    /// A file looked at in its write's tick (an mtime ahead of the coarse
    /// clock stands for it), rewritten in that tick: `(root, first look)`.
    private func racyFile(_ dir: SyncScratchDirectory) throws -> (String, LocalFile, Int64) {
        try dir.mkdir("root")
        let root = dir.url("root")
        let mtime = Int64(Date().timeIntervalSince1970 * 1e9) + 1_000_000_000
        try overwrite(root + "/f", content, mtime: mtime)
        guard case .found(let first?) = LocalDisk.look(root: root, path: "f", known: nil) else {
            XCTFail("look failed")
            throw SystemError(errno: EIO, operation: "look", path: root)
        }
        XCTAssertEqual(first.hash, SHA256.hash(content))
        XCTAssertTrue(first.isRacy, "hashed in the tick of its mtime")
        try overwrite(root + "/f", rewritten, mtime: mtime)
        return (root, first, mtime)
    }

    func testARewriteInTheTickOfTheLookIsHashedAgain() throws {
        let dir = try SyncScratchDirectory("racy-look")
        let (root, first, _) = try racyFile(dir)
        guard case .found(let second?) = LocalDisk.look(root: root, path: "f", known: first) else {
            return XCTFail("look failed")
        }
        XCTAssertTrue(second.sameStat(as: first), "the rewrite left the stat as it was")
        XCTAssertEqual(second.hash, SHA256.hash(rewritten), "the second look read the bytes again")
    }

    func testAScanLooksAtARacyFileAgainAndAnInstallChecksItsBytes() throws {
        let dir = try SyncScratchDirectory("racy-scan")
        let (root, first, _) = try racyFile(dir)
        let scanned = try XCTUnwrap(try DirectoryScanner.scan(root: root, ignore: .defaults).entries.first { $0.path == "f" })
        XCTAssertFalse(LocalDisk.unchanged(scanned, first), "a scan does not take the racy look's word")
        XCTAssertFalse(LocalDisk.matches(root + "/f", first), "an install does not replace bytes it never saw")
    }

    func testAnOldMtimeStillVouchesForTheHash() throws {
        let dir = try SyncScratchDirectory("racy-old")
        try dir.mkdir("root")
        let root = dir.url("root")
        let old: Int64 = 1_600_000_000_000_000_000
        try overwrite(root + "/f", content, mtime: old)
        guard case .found(let first?) = LocalDisk.look(root: root, path: "f", known: nil) else { return XCTFail("look failed") }
        XCTAssertFalse(first.isRacy)
        // Rewritten with the stat kept (no real write can do that with an old mtime):
        // the look trusts the stat and reads nothing, as for any unchanged file.
        try overwrite(root + "/f", rewritten, mtime: old)
        guard case .found(let second?) = LocalDisk.look(root: root, path: "f", known: first) else { return XCTFail("look failed") }
        XCTAssertEqual(second.hash, SHA256.hash(content), "the stat vouched: not read again")
        XCTAssertTrue(LocalDisk.matches(root + "/f", first))
    }
}
