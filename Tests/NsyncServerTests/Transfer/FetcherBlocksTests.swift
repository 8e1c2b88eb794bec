import Foundation
import XCTest
@testable import NsyncServer

/// `Fetcher.write(_:to:heldAt:...)`: received bytes and ranges the holder
/// said are the same as the held file's go into the `.part` in order, hashed
/// in order, around the page cache or not; a held file that changed since
/// its blocks were hashed fails the write instead of copying other bytes.
final class FetcherBlocksTests: XCTestCase {
    private var root = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "nsync-blocks-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: root + "/sub", withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: root)
    }

    private func bytes(_ count: Int, seed: UInt8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ Int(seed) &+ $0 >> 11) }
    }

    private func held(_ path: String) throws -> LocalFile {
        let status = try FileSystem.status(root + "/" + path)
        return LocalFile(kind: .file, size: UInt64(status.size), mode: 0o644, mtime: status.modificationTime, inode: status.inode)
    }

    func testReceivedAndHeldPiecesMakeTheNewVersionHashedInOrder() throws {
        let block = 128 << 10
        let old = bytes(10 * block + 500, seed: 1)
        FileManager.default.createFile(atPath: root + "/sub/db.bin", contents: Data(old))
        let source = try held("sub/db.bin")
        // New version: block 3 and the short tail differ, one block shorter.
        var new = Array(old[..<(9 * block + 77)])
        let patch = bytes(block, seed: 9)
        new.replaceSubrange((3 * block)..<(4 * block), with: patch)
        let tail = bytes(77, seed: 5)
        new.replaceSubrange((9 * block)..., with: tail)
        let pieces: [Fetcher.Piece] = [
            .held(0, UInt64(3 * block)),
            .bytes(UInt64(3 * block), patch[..<(block / 2)]),
            .bytes(UInt64(3 * block + block / 2), patch[(block / 2)...]),
            .held(UInt64(4 * block), UInt64(5 * block)),
            .bytes(UInt64(9 * block), tail[...]),
        ]
        for direct in [false, true] {
            let part = root + "/new-\(direct).part"
            let fd = try ChunkWriter.create(part, direct: direct)
            let hasher = SHA256()
            var handed = 0
            // Two jobs, as two writes of one transfer would be.
            try Fetcher.write(Array(pieces[..<2]), to: fd, heldAt: root, "sub/db.bin", source) { hasher.update($0); handed += $0.count }
            try Fetcher.write(Array(pieces[2...]), to: fd, heldAt: root, "sub/db.bin", source) { hasher.update($0); handed += $0.count }
            try fd.close()
            XCTAssertEqual(handed, new.count, "direct \(direct)")
            XCTAssertEqual(hasher.finalize(), SHA256.hash(new), "direct \(direct): hashed in order")
            XCTAssertEqual(FileManager.default.contents(atPath: part).map { Array($0) }, new, "direct \(direct)")
        }
    }

    func testAHeldFileThatChangedOrIsGoneFailsTheCopy() throws {
        let old = bytes(1 << 20, seed: 2)
        FileManager.default.createFile(atPath: root + "/db.bin", contents: Data(old))
        let source = try held("db.bin")
        let fd = try ChunkWriter.create(root + "/a.part", direct: false)
        defer { try? fd.close() }
        let pieces: [Fetcher.Piece] = [.held(0, 1 << 20)]

        // Rewritten with other bytes of the same size (another mtime).
        var later = source
        later.mtime -= 1_000_000_000
        XCTAssertThrowsError(try Fetcher.write(pieces, to: fd, heldAt: root, "db.bin", later) { _ in }) {
            XCTAssertTrue($0 is Fetcher.HeldCopyError, "not taken for this disk failing: \($0)")
            XCTAssertTrue("\($0)".contains("changed since it was looked at"), "\($0)")
        }
        // Replaced by another file (another inode).
        try FileManager.default.removeItem(atPath: root + "/db.bin")
        FileManager.default.createFile(atPath: root + "/db.bin", contents: Data(old))
        XCTAssertThrowsError(try Fetcher.write(pieces, to: fd, heldAt: root, "db.bin", source) { _ in }) {
            XCTAssertTrue($0 is Fetcher.HeldCopyError, "\($0)")
        }
        // Gone.
        try FileManager.default.removeItem(atPath: root + "/db.bin")
        XCTAssertThrowsError(try Fetcher.write(pieces, to: fd, heldAt: root, "db.bin", try held("a.part")) { _ in }) {
            XCTAssertTrue($0 is Fetcher.HeldCopyError, "\($0)")
        }
        // No held version hashed: a `.same` cannot be copied from anything.
        XCTAssertThrowsError(try Fetcher.write(pieces, to: fd, heldAt: root, "a.part", nil) { _ in })
        XCTAssertEqual(try fd.size(), 0, "nothing written")
    }

    /// A write job takes received pieces freely, but held copies only up to
    /// 64 MiB (a longer first one is split), so a burst of `.same`, or
    /// one long one, becomes several bounded jobs, in order.
    func testAWriteJobTakesHeldCopiesUpTo64MiB() {
        let mib: UInt64 = 1 << 20
        var pending: [Fetcher.Piece] = [.bytes(0, [1, 2][...])]
        var offset: UInt64 = 2
        for _ in 0..<5 {
            pending.append(.held(offset, 30 * mib))
            offset += 30 * mib
        }
        pending.append(.bytes(offset, [3][...]))
        pending.append(.held(offset + 1, 100 * mib))
        var jobs: [[UInt64]] = []
        while !pending.isEmpty, jobs.count < 10 {
            jobs.append(Fetcher.takeWritable(&pending).map(\.length))
        }
        XCTAssertEqual(jobs, [[2, 30 * mib, 30 * mib], [30 * mib, 30 * mib], [30 * mib, 1], [64 * mib], [36 * mib]])
        // One run of 200 MiB (a holder that knows its digests sends it so)
        // goes in pieces of 64 MiB, in order, the rest in the last.
        // So does a run of zeros (`.zeros`: hashed in the job).
        for first in [Fetcher.Piece.held(0, 200 * mib), .zeros(0, 200 * mib)] {
            pending = [first, .bytes(200 * mib, [4][...])]
            var pieces: [Fetcher.Piece] = []
            var jobs = 0
            for _ in 0..<10 where !pending.isEmpty {
                pieces += Fetcher.takeWritable(&pending)
                jobs += 1
            }
            XCTAssertEqual(jobs, 4)
            XCTAssertEqual(pieces.map(\.offset), [0, 64 * mib, 128 * mib, 192 * mib, 200 * mib])
            XCTAssertEqual(pieces.map(\.length), [64 * mib, 64 * mib, 64 * mib, 8 * mib, 1])
        }
    }

    /// What a holder's answers count toward its link's turns (the stall
    /// check's rounds): a `.same` (or `.zeros`) at most one turn, however
    /// long its run, since a holder that knows its digests sends a whole
    /// file's unchanged blocks as one frame without reading them.
    func testASameRunCountsAtMostOneTurnTowardTheLinksRounds() {
        let turn: UInt64 = 2 << 20
        XCTAssertTrue(Fetcher.answer(in: .same(requestID: 7, offset: 0, length: 1 << 30), largestTurn: turn)! == (7, turn))
        XCTAssertTrue(Fetcher.answer(in: .same(requestID: 7, offset: 0, length: 4096), largestTurn: turn)! == (7, 4096))
        XCTAssertTrue(Fetcher.answer(in: .zeros(requestID: 7, offset: 0, length: 1 << 30), largestTurn: turn)! == (7, turn))
        XCTAssertTrue(Fetcher.answer(in: .data(requestID: 8, offset: 0, bytes: [1, 2, 3][...]), largestTurn: turn)! == (8, 3))
        XCTAssertTrue(Fetcher.answer(in: .header(FetchHeader(requestID: 9, status: .ok, size: 10)), largestTurn: turn)! == (9, 0))
        XCTAssertTrue(Fetcher.answer(in: .end(requestID: 9), largestTurn: turn)! == (9, 0))
        XCTAssertNil(Fetcher.answer(in: .cancel(requestID: 9), largestTurn: turn))
    }

    /// A path through a symlink to outside the synced directory is never
    /// opened for a copy (`FileSystem.openBeneath`).
    func testAHeldPathThroughASymlinkIsNotFollowed() throws {
        let outside = root + "-outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: outside) }
        FileManager.default.createFile(atPath: outside + "/secret.bin", contents: Data(bytes(1 << 20, seed: 3)))
        let status = try FileSystem.status(outside + "/secret.bin")
        let source = LocalFile(kind: .file, size: UInt64(status.size), mode: 0o644, mtime: status.modificationTime, inode: status.inode)
        try FileManager.default.createSymbolicLink(atPath: root + "/link", withDestinationPath: outside)
        let fd = try ChunkWriter.create(root + "/b.part", direct: false)
        defer { try? fd.close() }
        XCTAssertThrowsError(try Fetcher.write([.held(0, 1 << 20)], to: fd, heldAt: root, "link/secret.bin", source) { _ in })
        XCTAssertEqual(try fd.size(), 0, "nothing copied from outside")
    }
}
