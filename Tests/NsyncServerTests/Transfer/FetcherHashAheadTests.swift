import Foundation
import Logging
import XCTest
@testable import NsyncServer

/// `Fetcher.hashAhead`: the blocks of a held file hashed while its origin
/// hashes a new version, listed like a preparation while it runs,
/// remembered when the file is still the one the manifest describes
/// (also when this node's own install of the same bytes set a new mtime
/// meanwhile), dropped when it changed, and given up for a fetch that
/// needs the copy slot. Real files in a temporary directory, the real loop.
final class FetcherHashAheadTests: XCTestCase {
    private var root = ""
    /// What the `heldFile` hook answers: the manifest's entry for the path now.
    private var manifestNow: LocalFile?

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "hash-ahead-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: root)
    }

    private func makeFetcher(_ loop: EventLoop) -> Fetcher {
        Fetcher(loop: loop, root: root, temporaryDirectory: root, leftovers: [], logger: Logger(label: "test"),
                hooks: .init(fetched: { _ in }, failed: { _, _, _ in }, answerOffer: { _ in .decline },
                             heldFile: { [unowned self] _ in manifestNow }, holders: { _ in [] }))
    }

    /// `size` bytes at `path`: `content` first, then a hole (cheap to make, read and hash).
    private func heldFile(_ path: String, content: [UInt8], size: Int) throws -> LocalFile {
        let fd = try FileDescriptor.open(root + "/" + path, .writeOnly, options: [.create, .truncate])
        try fd.closeAfter {
            try fd.write(all: content, at: 0)
            try fd.truncate(to: Int64(size))
        }
        let status = try FileSystem.status(root + "/" + path)
        var bytes = content + [UInt8](repeating: 0, count: size - content.count)
        let held = LocalFile(kind: .file, size: UInt64(size), mode: 0o644, mtime: status.modificationTime,
                             hash: SHA256.hash(bytes), inode: status.inode)
        bytes = []
        return held
    }

    private func expectedDigests(_ path: String, _ held: LocalFile) throws -> [UInt8] {
        let blockSize = Int(try XCTUnwrap(BlockDigests.blockSize(for: held.size)))
        let bytes = try FileDescriptor.readWholeFile(root + "/" + path)
        return stride(from: 0, to: bytes.count, by: blockSize).flatMap {
            SHA256.hash(Array(bytes[$0..<min($0 + blockSize, bytes.count)]))
        }
    }

    func testTheHeldBlocksAreListedWhileHashedAndRemembered() throws {
        let loop = try EventLoop()
        defer { loop.close() }
        let fetcher = makeFetcher(loop)
        let held = try heldFile("db.img", content: TestBytes.pseudoRandom(count: 3 << 20, seed: 1), size: (3 << 20) + 5)

        fetcher.hashAhead("db.img", held)
        XCTAssertEqual(fetcher.preparations.map(\.path), ["db.img"])
        XCTAssertEqual(fetcher.preparations.first?.preparation.stage, .hashingAhead)
        XCTAssertEqual(fetcher.copiesRunning, 1, "it holds the copy slot")
        fetcher.hashAhead("db.img", held)
        XCTAssertEqual(fetcher.copiesRunning, 1, "one pass at a time")
        XCTAssertTrue(loop.run(until: { fetcher.hashingAhead == nil }, timeout: 10_000))

        XCTAssertEqual(fetcher.rememberedBlocks(of: held)?.digests, try expectedDigests("db.img", held))
        XCTAssertTrue(fetcher.preparations.isEmpty)
        XCTAssertEqual(fetcher.copiesRunning, 0)
    }

    /// 129 MiB (three steps): after the first, this node's own install of
    /// a touch sets a new mtime, which the manifest then lists with the same
    /// bytes: the digests are kept. (Should the pool finish the other two
    /// steps first, the pass ends with the old mtime and keeps them too:
    /// `keepsDigests` is checked on its own below.)
    func testANewMtimeDuringThePassListedByTheManifestForTheSameBytesKeepsTheDigests() throws {
        let loop = try EventLoop()
        defer { loop.close() }
        let fetcher = makeFetcher(loop)
        let path = "vm.img"
        let held = try heldFile(path, content: TestBytes.pseudoRandom(count: 1 << 20, seed: 2),
                                size: 2 * Int(Fetcher.preparationStep) + (1 << 20))
        let touched = held.mtime + 1_000_000_000

        fetcher.hashAhead(path, held)
        XCTAssertTrue(loop.run(until: { fetcher.hashingAhead.map { $0.preparation.done > 0 } ?? true }, timeout: 10_000))
        XCTAssertNotNil(fetcher.hashingAhead, "more steps run (the first took \(Fetcher.preparationStep) bytes)")
        try FileSystem.setModificationTime(root + "/" + path, touched)
        var now = held
        now.mtime = touched
        manifestNow = now
        XCTAssertTrue(loop.run(until: { fetcher.hashingAhead == nil }, timeout: 10_000))

        XCTAssertEqual(fetcher.rememberedBlocks(of: held)?.digests, try expectedDigests(path, held))
        XCTAssertEqual(fetcher.copiesRunning, 0)
    }

    func testOnlyTheSameMtimeOrTheManifestsNewOneForTheSameBytesKeepsTheDigests() {
        let held = LocalFile(kind: .file, size: 5 << 20, mode: 0o644, mtime: 100, hash: [1, 2, 3], inode: 7)
        var touched = held
        touched.mtime = 200
        var otherBytes = touched
        otherBytes.hash = [9]
        var otherInode = touched
        otherInode.inode = 8
        XCTAssertTrue(Fetcher.keepsDigests(of: held, endMtime: 100, manifestNow: nil))
        XCTAssertTrue(Fetcher.keepsDigests(of: held, endMtime: 200, manifestNow: touched))
        XCTAssertFalse(Fetcher.keepsDigests(of: held, endMtime: 200, manifestNow: nil), "a new mtime nobody explains")
        XCTAssertFalse(Fetcher.keepsDigests(of: held, endMtime: 300, manifestNow: touched), "not the manifest's mtime")
        XCTAssertFalse(Fetcher.keepsDigests(of: held, endMtime: 200, manifestNow: otherBytes), "other bytes there now")
        XCTAssertFalse(Fetcher.keepsDigests(of: held, endMtime: 200, manifestNow: otherInode), "another file there now")
        XCTAssertFalse(Fetcher.keepsDigests(of: held, endMtime: nil, manifestNow: touched), "the end was not checked")
    }

    func testAFetchOfAnotherFileWaitingForTheCopySlotStopsThePass() throws {
        let loop = try EventLoop()
        defer { loop.close() }
        let fetcher = makeFetcher(loop)
        let held = try heldFile("big.img", content: TestBytes.pseudoRandom(count: 1 << 20, seed: 3),
                                size: 2 * Int(Fetcher.preparationStep) + 1)
        let record = FileRecord(path: "other.db", version: 9, kind: .file, size: 30, mode: 0o644, mtime: 0, hash: [],
                                origin: "n1", holders: ["n1"])
        let waiting = Fetcher.Transfer(record: record, expected: nil, temporaryPath: root + "/unused.part")

        fetcher.hashAhead("big.img", held)
        // The same file's fetch waits for this very pass: it does not stop it.
        let same = Fetcher.Transfer(record: FileRecord(path: "big.img", version: 9, kind: .file, size: held.size,
                                                       mode: 0o644, mtime: 0, hash: [], origin: "n1", holders: ["n1"]),
                                    expected: nil, temporaryPath: root + "/unused2.part")
        fetcher.askHashAheadToYield(for: same)
        XCTAssertEqual(fetcher.hashingAhead?.yielded, false)
        fetcher.askHashAheadToYield(for: waiting)
        XCTAssertTrue(loop.run(until: { fetcher.hashingAhead == nil }, timeout: 10_000))

        XCTAssertNil(fetcher.rememberedBlocks(of: held), "stopped before the end: nothing remembered")
        XCTAssertEqual(fetcher.copiesRunning, 0, "the slot is free for the waiting fetch")
        XCTAssertTrue(fetcher.preparations.isEmpty)
    }

    // MARK: the origin's own blocks (`hashOwnBlocks`)

    /// The origin hashes its new version's blocks beside the look that
    /// announces it: listed while it runs, pending for that SHA-256 once
    /// the look found it, then remembered under it, whichever ends first.
    func testTheOriginsOwnBlocksAreRememberedUnderTheHashItsLookFinds() throws {
        for lookFirst in [true, false] {
            let loop = try EventLoop()
            defer { loop.close() }
            var settled = 0
            let fetcher = Fetcher(loop: loop, root: root, temporaryDirectory: root, leftovers: [], logger: Logger(label: "test"),
                                  hooks: .init(fetched: { _ in }, failed: { _, _, _ in }, answerOffer: { _ in .decline },
                                               heldFile: { _ in nil }, holders: { _ in [] }, ownBlocksSettled: { settled += 1 }))
            let path = "new-\(lookFirst).img"
            let made = try heldFile(path, content: TestBytes.pseudoRandom(count: 2 << 20, seed: 7), size: (2 << 20) + 9)
            var beforeHashing = made
            beforeHashing.hash = []
            let blockSize = try XCTUnwrap(BlockDigests.blockSize(for: made.size))

            fetcher.hashOwnBlocks(path, beforeHashing, blockSize: blockSize)
            XCTAssertEqual(fetcher.preparations.first?.preparation.stage, .hashingOwnBlocks)
            XCTAssertEqual(fetcher.copiesRunning, 1, "it holds the copy slot")
            fetcher.hashAhead("other.img", made)
            XCTAssertEqual(fetcher.preparations.count, 1, "one pass at a time")
            if lookFirst {
                fetcher.ownVersionHashed(path, made)
                XCTAssertTrue(fetcher.ownBlocksPending(for: made.hash, blockSize: blockSize), "a stream of it may wait for them")
                XCTAssertFalse(fetcher.ownBlocksPending(for: made.hash, blockSize: 2 * blockSize), "not in other blocks")
            }
            // Offered again (looked at again): the pass stands.
            fetcher.hashOwnBlocks(path, beforeHashing, blockSize: blockSize)
            XCTAssertEqual(fetcher.copiesRunning, 1)
            XCTAssertFalse(fetcher.ownBlocksPending(for: SHA256.hash([1]), blockSize: blockSize))
            XCTAssertTrue(loop.run(until: { fetcher.hashingAhead == nil }, timeout: 10_000))
            XCTAssertEqual(settled, 1, "the server is told the pass ended")
            XCTAssertFalse(fetcher.ownBlocksPending(for: made.hash, blockSize: blockSize))
            if !lookFirst {
                XCTAssertNil(fetcher.blockMemory.digests(for: made.hash, blockSize: blockSize), "no hash known yet")
                fetcher.hashOwnBlocks(path, beforeHashing, blockSize: blockSize)
                XCTAssertNil(fetcher.hashingAhead, "hashed already: not again")
                fetcher.ownVersionHashed(path, made)
            }
            XCTAssertEqual(fetcher.blockMemory.digests(for: made.hash, blockSize: blockSize)?.digests,
                           try expectedDigests(path, made), "look first: \(lookFirst)")
            XCTAssertTrue(fetcher.ownPasses.isEmpty)
            XCTAssertEqual(fetcher.copiesRunning, 0)
        }
    }

    /// The look found another file than the one whose blocks were hashed
    /// (written again meanwhile, or another inode): nothing is remembered,
    /// before or after the pass ends; nor after a pass the file's change cut short.
    func testOwnBlocksOfAnotherFileThanTheLookFoundAreDropped() throws {
        let loop = try EventLoop()
        defer { loop.close() }
        let fetcher = makeFetcher(loop)
        let made = try heldFile("a.img", content: TestBytes.pseudoRandom(count: 1 << 20, seed: 8), size: (1 << 20) + 3)
        let blockSize = try XCTUnwrap(BlockDigests.blockSize(for: made.size))
        var later = made
        later.mtime += 1
        var otherInode = made
        otherInode.inode += 1

        for (lookFirst, found) in [(false, later), (true, otherInode)] {
            fetcher.hashOwnBlocks("a.img", made, blockSize: blockSize)
            if lookFirst { fetcher.ownVersionHashed("a.img", found) }
            XCTAssertTrue(loop.run(until: { fetcher.hashingAhead == nil }, timeout: 10_000))
            if !lookFirst { fetcher.ownVersionHashed("a.img", found) }
            XCTAssertTrue(fetcher.ownPasses.isEmpty)
            XCTAssertNil(fetcher.blockMemory.digests(for: made.hash, blockSize: blockSize))
            XCTAssertNil(fetcher.blockMemory.digests(for: found.hash, blockSize: blockSize))
        }

        // Written while hashed (two steps: the loop runs the second, so
        // after the change): the pass's last check fails, nothing stays.
        let big = try heldFile("b.img", content: TestBytes.pseudoRandom(count: 1 << 20, seed: 9),
                               size: Int(Fetcher.preparationStep) + 3)
        let bigBlocks = try XCTUnwrap(BlockDigests.blockSize(for: big.size))
        fetcher.hashOwnBlocks("b.img", big, blockSize: bigBlocks)
        fetcher.ownVersionHashed("b.img", big)
        try FileSystem.setModificationTime(root + "/b.img", big.mtime + 5_000_000_000)
        XCTAssertTrue(loop.run(until: { fetcher.hashingAhead == nil }, timeout: 10_000))
        XCTAssertTrue(fetcher.ownPasses.isEmpty)
        XCTAssertNil(fetcher.blockMemory.digests(for: big.hash, blockSize: bigBlocks))

        // The look finds another file while the pass still runs: the pass
        // stops at its next step, before reading the rest.
        var touched = big
        touched.mtime += 5_000_000_000
        fetcher.hashOwnBlocks("b.img", touched, blockSize: bigBlocks)
        var other = touched
        other.inode += 1
        fetcher.ownVersionHashed("b.img", other)
        XCTAssertEqual(fetcher.hashingAhead?.yielded, true)
        XCTAssertTrue(loop.run(until: { fetcher.hashingAhead == nil }, timeout: 10_000))
        XCTAssertTrue(fetcher.ownPasses.isEmpty)
    }

    /// Passes whose look never came (it found the file still changing)
    /// are kept up to `maxOwnPasses`; the oldest goes first.
    func testOwnPassesWaitingForTheirHashAreBounded() throws {
        let loop = try EventLoop()
        defer { loop.close() }
        let fetcher = makeFetcher(loop)
        var made: [LocalFile] = []
        for i in 0...Fetcher.maxOwnPasses {
            let file = try heldFile("f\(i).img", content: TestBytes.pseudoRandom(count: 1 << 20, seed: UInt64(20 + i)), size: 1 << 20)
            made.append(file)
            fetcher.hashOwnBlocks("f\(i).img", file, blockSize: 128 << 10)
            XCTAssertTrue(loop.run(until: { fetcher.hashingAhead == nil }, timeout: 10_000))
            usleep(3_000)  // a later start (loop ms)
        }
        XCTAssertEqual(fetcher.ownPasses.count, Fetcher.maxOwnPasses)
        XCTAssertNil(fetcher.ownPasses["f0.img"], "the oldest went")
        fetcher.ownVersionHashed("f1.img", made[1])
        XCTAssertNotNil(fetcher.blockMemory.digests(for: made[1].hash, blockSize: 128 << 10))
        XCTAssertEqual(fetcher.ownPasses.count, Fetcher.maxOwnPasses - 1)
    }
}
