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

    /// A file looked at in its write's tick, rewritten in that tick:
    /// `(root, first look, mtime)`.
    private func racyFile(_ dir: SyncScratchDirectory) throws -> (String, LocalFile, Int64) {
        try dir.mkdir("root")
        let root = dir.url("root")
        try overwrite(root + "/f", content, mtime: 0)
        let (first, mtime) = try Self.racyLook(root: root, path: "f")
        XCTAssertEqual(first.hash, SHA256.hash(content))
        try overwrite(root + "/f", rewritten, mtime: mtime)
        return (root, first, mtime)
    }

    /// Stamps `path` with the coarse clock's now and looks at it at once,
    /// as a look right after a write's close does: racy. Tried again if the
    /// thread lost more than the two ticks' margin in between (a loaded
    /// machine), at most 50 times. Returns the look and the mtime.
    static func racyLook(root: String, path: String) throws -> (LocalFile, Int64) {
        for _ in 0..<50 {
            let mtime = FileSystem.coarseNow()
            try FileSystem.setModificationTime(root + "/" + path, mtime)
            guard case .found(let local?) = LocalDisk.look(root: root, path: path, known: nil) else {
                throw SystemError(errno: EIO, operation: "look", path: root + "/" + path)
            }
            if local.isRacy { return (local, mtime) }
        }
        XCTFail("50 looks right after a stamp, none within two ticks of it")
        throw SystemError(errno: EIO, operation: "look", path: root + "/" + path)
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
        let future = Int64(Date().timeIntervalSince1970 * 1e9) + 3_600_000_000_000
        try overwrite(root + "/g", content, mtime: future)
        guard case .found(let dated?) = LocalDisk.look(root: root, path: "g", known: nil) else { return XCTFail("look failed") }
        XCTAssertFalse(dated.isRacy, "dated an hour ahead: no write stamps that")
        // Rewritten with the stat kept (no real write can do that with an old mtime):
        // the look trusts the stat and reads nothing, as for any unchanged file.
        try overwrite(root + "/f", rewritten, mtime: old)
        guard case .found(let second?) = LocalDisk.look(root: root, path: "f", known: first) else { return XCTFail("look failed") }
        XCTAssertEqual(second.hash, SHA256.hash(content), "the stat vouched: not read again")
        XCTAssertTrue(LocalDisk.matches(root + "/f", first))
    }
}
