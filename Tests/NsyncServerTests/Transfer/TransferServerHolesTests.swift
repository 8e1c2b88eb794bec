import Foundation
import XCTest
@testable import NsyncServer

/// A holder serving a sparse file to a fetcher that takes `.zeros` finds
/// its holes with `SEEK_DATA` and sends each as one `.zeros` (up to
/// 64 MiB) without reading it; the data between is read and sent as
/// bytes. A fetcher that does not take `.zeros` gets every byte. A real
/// `TransferServer` on its own loop and thread, real TLS on 127.0.0.1, a
/// `HostilePeer` as the fetcher.
final class TransferServerHolesTests: XCTestCase {
    private var certificates: TestCertificates!
    private var root = ""
    private var content: [UInt8] = []
    private var server: KnownBlocksServer!

    override func setUpWithError() throws {
        certificates = try TestCertificates(nodes: ["node1", "node2"])
        root = NSTemporaryDirectory() + "holes-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        // 1 MiB of data, a 32 MiB hole, 256 KiB of data, a 70 MiB hole to the end.
        let size = (1 << 20) + (32 << 20) + (256 << 10) + (70 << 20)
        content = [UInt8](repeating: 0, count: size)
        let first = TestBytes.pseudoRandom(count: 1 << 20, seed: 71)
        let second = TestBytes.pseudoRandom(count: 256 << 10, seed: 72)
        content.replaceSubrange(0..<first.count, with: first)
        content.replaceSubrange((33 << 20)..<((33 << 20) + second.count), with: second)
        let path = root + "/disk.img"
        let fd = try FileDescriptor.open(path, .writeOnly, options: [.create, .truncate])
        try fd.closeAfter {
            try fd.write(all: first, at: 0)
            try fd.write(all: second, at: 33 << 20)
            try fd.truncate(to: Int64(size))
        }
        let reader = try FileDescriptor.open(path, .readOnly)
        let allocated = try reader.closeAfter { try FileSystem.allocatedBytes(descriptor: reader.rawValue) }
        XCTAssertLessThan(allocated, 4 << 20, "the test needs a disk that keeps the file sparse")
    }

    override func tearDown() {
        server?.stop()
        certificates?.remove()
        try? FileManager.default.removeItem(atPath: root)
    }

    private func start() throws -> HostilePeer {
        server = try KnownBlocksServer(root: root, size: UInt64(content.count), hash: SHA256.hash(content),
                                       certificates: certificates, pending: false, known: nil, wait: 0)
        let peer = try HostilePeer(port: server.port, caPath: certificates.caPath,
                                   certificatePath: certificates.certificatePath("node2"), keyPath: certificates.keyPath("node2"))
        peer.sendHello(Hello(clusterID: peer.clusterID, nodeName: "node2", channel: .file))
        XCTAssertEqual(peer.waitForHello()?.nodeName, "node1")
        return peer
    }

    /// The file as the answer describes it from `offset`: data where data
    /// came, zeros where `.zeros` did; nil where a byte is missing or twice.
    private func reassemble(_ answer: HostilePeer.Answer, from offset: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0xEE, count: content.count - offset)
        var covered = 0
        for piece in answer.pieces {
            guard let bytes = piece.bytes else { return nil }
            out.replaceSubrange((Int(piece.offset) - offset)..<(Int(piece.offset) - offset + bytes.count), with: bytes)
            covered += bytes.count
        }
        for run in answer.zeros {
            let from = Int(run.offset) - offset
            for i in from..<(from + Int(run.length)) { out[i] = 0 }
            covered += Int(run.length)
        }
        return covered == out.count ? out : nil
    }

    func testHolesGoAsLongZerosUnreadAndTheDataBetweenAsBytes() throws {
        let peer = try start()
        peer.sendRequest(FetchRequest(requestID: 1, path: "disk.img", version: 1, takesZeros: true))
        let answer = peer.waitForAnswer(1, timeout: 20_000)
        XCTAssertEqual(answer.header?.status, .ok)
        XCTAssertEqual(answer.header?.allocated ?? .max, 4 << 20, accuracy: 4 << 20, "says it is sparse")
        XCTAssertTrue(answer.ended)
        XCTAssertEqual(answer.data.count, (1 << 20) + (256 << 10), "only the data went as bytes")
        XCTAssertEqual(answer.zeros.map(\.length), [32 << 20, 64 << 20, 6 << 20],
                       "each hole unread, in runs of at most 64 MiB (read, they came a chunk at a time)")
        XCTAssertTrue(reassemble(answer, from: 0) == content, "the answer is the file")
    }

    func testAFetchResumedInsideAHoleStartsWithItsRest() throws {
        let peer = try start()
        let offset = (20 << 20) + 4_096
        peer.sendRequest(FetchRequest(requestID: 2, path: "disk.img", version: 1, offset: UInt64(offset), takesZeros: true))
        let answer = peer.waitForAnswer(2, timeout: 20_000)
        XCTAssertTrue(answer.ended)
        XCTAssertEqual(answer.zeros.first?.offset, UInt64(offset))
        XCTAssertEqual(answer.zeros.first?.length, UInt64((33 << 20) - offset))
        XCTAssertTrue(reassemble(answer, from: offset) == Array(content[offset...]))
    }

    func testARequestEndingInsideAHoleEndsThere() throws {
        let peer = try start()
        peer.sendRequest(FetchRequest(requestID: 4, path: "disk.img", version: 1, offset: 0, length: 20 << 20, takesZeros: true))
        let answer = peer.waitForAnswer(4, timeout: 20_000)
        XCTAssertTrue(answer.ended)
        XCTAssertEqual(answer.data.count, 1 << 20)
        XCTAssertEqual(answer.zeros.map(\.offset), [1 << 20])
        XCTAssertEqual(answer.zeros.map(\.length), [19 << 20], "cut at the end asked for")
    }

    func testAFetcherThatDoesNotTakeZerosGetsEveryByte() throws {
        let peer = try start()
        peer.sendRequest(FetchRequest(requestID: 3, path: "disk.img", version: 1, offset: 0, length: 40 << 20))
        let answer = peer.waitForAnswer(3, timeout: 20_000)
        XCTAssertTrue(answer.ended)
        XCTAssertTrue(answer.zeros.isEmpty)
        XCTAssertEqual(answer.data.count, 40 << 20)
        XCTAssertTrue(answer.data == Array(content[..<(40 << 20)]))
    }

    /// A relay passes on a run that arrived as `.zeros` as one `.zeros`,
    /// at once: not read back from its `.part` (which here holds only the
    /// first 4 KiB, so a read would wait for the write forever), and the
    /// data that arrives after it from memory. A fetcher that does not
    /// take `.zeros` waits for the bytes to be written instead.
    func testARelayPassesOnZerosAsTheyArriveWithoutReadingThem() throws {
        let part = root + "/relay.part"
        let head = Array(content[..<4_096])
        FileManager.default.createFile(atPath: part, contents: Data(head))
        let feed = RelayFeed(size: UInt64(content.count), temporaryPath: part, written: 0, arrived: 0)
        server = try KnownBlocksServer(root: root, size: UInt64(content.count), hash: SHA256.hash(content),
                                       certificates: certificates, pending: false, known: nil, wait: 0, relay: feed)
        let peer = try HostilePeer(port: server.port, caPath: certificates.caPath,
                                   certificatePath: certificates.certificatePath("node2"), keyPath: certificates.keyPath("node2"))
        peer.sendHello(Hello(clusterID: peer.clusterID, nodeName: "node2", channel: .file))
        XCTAssertEqual(peer.waitForHello()?.nodeName, "node1")
        peer.sendRequest(FetchRequest(requestID: 5, path: "disk.img", version: 1, takesZeros: true))
        peer.sendRequest(FetchRequest(requestID: 6, path: "disk.img", version: 1))
        peer.pump(milliseconds: 300)  // both wait on the feed, watching it

        let after = Array(content[(1 << 20)..<((1 << 20) + 4_096)])  // data after the run
        server.onLoop {
            feed.arrived(offset: 0, bytes: head[...])
            feed.wrote(to: 4_096)
            feed.arrivedZeros(offset: 4_096, length: (1 << 20) - 4_096)
            feed.arrived(offset: 1 << 20, bytes: after[...])
        }
        peer.pump(milliseconds: 1_000)
        let zeros = peer.answer(5)
        XCTAssertEqual(zeros.header?.status, .ok)
        XCTAssertEqual(zeros.zeros.map(\.offset), [4_096])
        XCTAssertEqual(zeros.zeros.map(\.length), [(1 << 20) - 4_096], "the run, unread, at once")
        XCTAssertEqual(zeros.pieces.map(\.offset), [0, 1 << 20], "then the data that came after it, from memory")
        XCTAssertTrue(zeros.pieces.last?.bytes == after)
        let bytes = peer.answer(6)
        XCTAssertTrue(bytes.zeros.isEmpty)
        XCTAssertEqual(bytes.data, head, "the rest waits for the write: its zeros go as bytes")
    }
}
