import Foundation
import Logging
import XCTest
@testable import NsyncServer

/// A holder that knows the digests of its own blocks (`TransferServer.knownBlocks`)
/// answers a block-comparing request from them: unchanged runs as one
/// `.same`, unread. While a pass over its blocks still runs
/// (`knownBlocksPending`), the stream waits for it, is woken when it ends
/// (`knownBlocksSettled`), and reads and hashes the blocks itself once the
/// wait is over. A real `TransferServer` on its own loop and thread, real
/// TLS on 127.0.0.1, a `HostilePeer` as the fetcher.
///
/// To tell the two ways apart, the digests the holder "knows" are the
/// fetcher's own (every block agrees), though one block of the file differs:
/// answered from them, the whole file is one `.same`; read and hashed, that
/// block comes as data.
final class TransferServerKnownBlocksTests: XCTestCase {
    private static let blockSize = 64 << 10
    private var certificates: TestCertificates!
    private var root = ""
    private var content: [UInt8] = []
    /// The fetcher's version: block 5 differs.
    private var held: [UInt8] = []
    private var server: KnownBlocksServer!

    override func setUpWithError() throws {
        certificates = try TestCertificates(nodes: ["node1", "node2"])
        root = NSTemporaryDirectory() + "known-blocks-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        content = TestBytes.pseudoRandom(count: 16 * Self.blockSize, seed: 61)
        held = content
        held[5 * Self.blockSize + 100] ^= 0xFF
        FileManager.default.createFile(atPath: root + "/disk.img", contents: Data(content))
    }

    override func tearDown() {
        server?.stop()
        certificates?.remove()
        try? FileManager.default.removeItem(atPath: root)
    }

    private func digests(_ bytes: [UInt8]) -> BlockDigests {
        BlockDigests(blockSize: UInt32(Self.blockSize), digests: stride(from: 0, to: bytes.count, by: Self.blockSize).flatMap {
            SHA256.hash(Array(bytes[$0..<min($0 + Self.blockSize, bytes.count)]))
        })
    }

    private func start(pending: Bool, known: BlockDigests? = nil, wait: UInt64) throws -> HostilePeer {
        server = try KnownBlocksServer(root: root, size: UInt64(content.count), hash: SHA256.hash(content),
                                       certificates: certificates, pending: pending, known: known, wait: wait)
        let peer = try HostilePeer(port: server.port, caPath: certificates.caPath,
                                   certificatePath: certificates.certificatePath("node2"), keyPath: certificates.keyPath("node2"))
        peer.sendHello(Hello(clusterID: peer.clusterID, nodeName: "node2", channel: .file))
        XCTAssertEqual(peer.waitForHello()?.nodeName, "node1")
        return peer
    }

    private func request(_ id: UInt32, offset: UInt64 = 0) -> FetchRequest {
        FetchRequest(requestID: id, path: "disk.img", version: 1, offset: offset, blocks: digests(held))
    }

    /// Pumps the peer for `ms` and returns what came for `id` meanwhile.
    private func answer(after ms: UInt64, _ id: UInt32, _ peer: HostilePeer) -> HostilePeer.Answer {
        peer.pump(milliseconds: ms)
        return peer.answer(id)
    }

    /// A holder that knows its own digests answers from them: runs of
    /// blocks that agree, or disagree, from a block boundary, cut at the
    /// end asked for; a block the fetcher has no digest for, or digests of
    /// another block size, never agree.
    func testKnownDigestsSplitTheFileIntoRunsThatAgreeOrNot() {
        let size = 64 << 10
        let file = (0..<(5 * size + 100)).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ $0 >> 11) }
        func digests(_ bytes: [UInt8], blockSize: Int = size) -> BlockDigests {
            BlockDigests(blockSize: UInt32(blockSize), digests: stride(from: 0, to: bytes.count, by: blockSize).flatMap {
                SHA256.hash(Array(bytes[$0..<min($0 + blockSize, bytes.count)]))
            })
        }
        let ours = digests(file)
        var held = file
        held[2 * size + 7] ^= 1  // block 2 differs
        let theirs = digests(held)
        let end = UInt64(file.count)
        let run = { (from: Int, to: UInt64, theirs: BlockDigests) in
            TransferServer.Session.knownRun(from: UInt64(from), to: to, theirs: theirs, ours: ours)
        }
        XCTAssertTrue(run(0, end, theirs) == (true, UInt64(2 * size)))
        XCTAssertTrue(run(2 * size, end, theirs) == (false, UInt64(size)))
        XCTAssertTrue(run(3 * size, end, theirs) == (true, UInt64(2 * size + 100)), "to the end, the short last block agreeing")
        XCTAssertTrue(run(3 * size, UInt64(4 * size + 10), theirs) == (true, UInt64(size + 10)), "cut at the end asked for")
        XCTAssertTrue(run(0, end, ours) == (true, end), "all of it")
        // The fetcher's file is shorter: no digest for the last two blocks.
        let shorter = digests(Array(file[..<(4 * size)]))
        XCTAssertTrue(run(3 * size, end, shorter) == (true, UInt64(size)))
        XCTAssertTrue(run(4 * size, end, shorter) == (false, UInt64(size + 100)))
        // Its last block one byte shorter than ours: not the same block.
        let cut = digests(Array(file[..<(file.count - 1)]))
        XCTAssertTrue(run(5 * size, end, cut) == (false, 100))
        // Another block size: nothing agrees.
        XCTAssertTrue(run(0, end, digests(file, blockSize: 2 * size)) == (false, end))
    }

    func testAKnownVersionIsAnsweredFromItsDigestsUnread() throws {
        let peer = try start(pending: false, known: digests(held), wait: 60_000)
        peer.sendRequest(request(1))
        let answer = peer.waitForAnswer(1)
        XCTAssertEqual(answer.header?.status, .ok)
        XCTAssertTrue(answer.ended)
        XCTAssertEqual(answer.pieces.map(\.offset), [0])
        XCTAssertEqual(answer.pieces.map(\.length), [UInt64(content.count)])
        XCTAssertTrue(answer.data.isEmpty, "nothing read")
    }

    /// No other event reaches the session meanwhile: only the end of the
    /// pass wakes the stream (the wait itself is a minute).
    func testAStreamWaitsForThePassOverItsVersionAndIsWokenWhenItEnds() throws {
        let peer = try start(pending: true, wait: 60_000)
        peer.sendRequest(request(1))
        let waiting = answer(after: 500, 1, peer)
        XCTAssertEqual(waiting.header?.status, .ok, "the header goes at once")
        XCTAssertTrue(waiting.pieces.isEmpty, "nothing before the pass ends: \(waiting.pieces.map(\.offset))")
        XCTAssertFalse(waiting.ended)

        server.settle(known: digests(held))
        let answer = peer.waitForAnswer(1, timeout: 5_000)
        XCTAssertTrue(answer.ended, "woken by the pass's end")
        XCTAssertEqual(answer.pieces.map(\.length), [UInt64(content.count)], "answered from the digests")
    }

    /// A pass that does not end within the wait: the stream reads and
    /// hashes the blocks itself (the changed one comes as data).
    func testAStreamWaitsNoLongerThanTheWaitThenReadsTheBlocks() throws {
        let peer = try start(pending: true, wait: 300)
        let sent = Date()
        peer.sendRequest(request(1))
        let answer = peer.waitForAnswer(1, timeout: 10_000)
        XCTAssertTrue(answer.ended)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(sent), 0.3, "it waited")
        let block = UInt64(Self.blockSize)
        XCTAssertEqual(answer.pieces.filter { $0.bytes == nil }.map(\.offset), [0, 6 * block])
        XCTAssertEqual(answer.pieces.filter { $0.bytes == nil }.map(\.length), [5 * block, 10 * block])
        XCTAssertEqual(answer.data, Array(content[(5 * Self.blockSize)..<(6 * Self.blockSize)]))
    }

    /// Cancelled while it waits: it leaves at once, and nothing more comes
    /// for it when the pass ends; the channel serves the next request.
    func testAStreamCancelledWhileItWaitsGetsNothingMore() throws {
        let peer = try start(pending: true, wait: 60_000)
        peer.sendRequest(request(1))
        XCTAssertEqual(answer(after: 300, 1, peer).header?.status, .ok)
        peer.send(HostilePeer.encode(.cancel(requestID: 1)))
        peer.pump(milliseconds: 100)
        server.settle(known: digests(held))
        peer.sendRequest(request(2))
        let second = peer.waitForAnswer(2, timeout: 5_000)
        XCTAssertTrue(second.ended)
        XCTAssertEqual(second.pieces.map(\.length), [UInt64(content.count)])
        let first = peer.answer(1)
        XCTAssertTrue(first.pieces.isEmpty)
        XCTAssertFalse(first.ended)
        XCTAssertFalse(peer.closed)
    }

    /// A block request from past the file's end (no prefix digest to
    /// refuse it by) is an empty stream; its log line at debug level
    /// counts from where it started, not from the offset asked for.
    func testABlockRequestFromPastTheEndEndsEmpty() throws {
        let peer = try start(pending: false, known: digests(held), wait: 60_000)
        peer.sendRequest(request(1, offset: UInt64(content.count) + 10))
        let answer = peer.waitForAnswer(1)
        XCTAssertEqual(answer.header?.status, .ok)
        XCTAssertTrue(answer.ended)
        XCTAssertTrue(answer.pieces.isEmpty)
        peer.sendRequest(request(2))
        XCTAssertTrue(peer.waitForAnswer(2).ended, "the holder still serves")
    }
}
