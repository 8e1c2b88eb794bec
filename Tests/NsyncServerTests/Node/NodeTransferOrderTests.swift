import Foundation
import XCTest
@testable import NsyncServer

/// How a real nsyncd orders its answers on one file channel, seen by a peer
/// that holds a member's certificate (real TCP, real TLS): a small file asked
/// for behind large ones is answered in between their chunks, not after
/// them; at most `TransferServer.maxStreams` files stream at once; every
/// file still arrives whole, each in order.
///
/// One cluster serves the class: node1 (holding the files) and node2 run;
/// the test's peer speaks as node3, a member that is down.
final class NodeTransferOrderTests: XCTestCase {
    /// The running cluster and what node1 holds; made once per class.
    final class Fixture {
        let scratch: DaemonScratch
        let certificates: TestCertificates
        let cluster: DaemonCluster
        let node1: DaemonProcess
        let node2: DaemonProcess
        /// Path -> (version, content) of every file node1 holds.
        let files: [String: (version: UInt64, content: [UInt8])]

        static let large = "large.bin"
        static let small = "small.txt"
        static let medium = (1...6).map { "medium-\($0).bin" }

        init() throws {
            let scratch = try DaemonScratch("NodeTransferOrderTests")
            self.scratch = scratch
            certificates = try TestCertificates(nodes: ["node1", "node2", "node3"])
            let cluster = try DaemonCluster(names: ["node1", "node2", "node3"], certificates: certificates, in: scratch)
            self.cluster = cluster
            let root = cluster.member("node1").root
            var contents: [String: [UInt8]] = [:]
            // Large enough that the peer's socket buffers cannot take all of it.
            var large = [UInt8](repeating: 0, count: 40 << 20)
            var state = UInt64.random(in: 1...UInt64.max)
            large.withUnsafeMutableBytes { raw in
                for i in stride(from: 0, to: raw.count, by: 8) {
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    raw.storeBytes(of: state, toByteOffset: i, as: UInt64.self)
                }
            }
            contents[Self.large] = large
            // Many chunks each, so several are under way at once.
            for (i, name) in Self.medium.enumerated() {
                contents[name] = [UInt8](repeating: UInt8(i + 1), count: 4 << 20) + Array("\(name)\n".utf8)
            }
            contents[Self.small] = Array("a small edit \(UUID().uuidString)\n".utf8)
            for (name, bytes) in contents {
                guard FileManager.default.createFile(atPath: root + "/" + name, contents: Data(bytes)) else {
                    throw DaemonTestError("cannot write \(root)/\(name)")
                }
            }
            let node1 = try cluster.start("node1", in: scratch)
            let node2 = try cluster.start("node2", in: scratch)
            self.node1 = node1
            self.node2 = node2
            var versions: [String: UInt64] = [:]
            let settled = DaemonWait.until("node1 to hold every file", timeout: 60, context: { node1.log + node2.log }) {
                for name in contents.keys where versions[name] == nil {
                    versions[name] = DaemonProbe.manifestVersion(root: root, path: name)
                }
                return versions.count == contents.count
            }
            guard settled else {
                scratch.remove()
                certificates.remove()
                throw DaemonTestError("the cluster did not settle:\n\(node1.log)\n\(node2.log)")
            }
            files = Dictionary(uniqueKeysWithValues: contents.map { ($0.key, (versions[$0.key]!, $0.value)) })
        }

        func remove() {
            scratch.remove()
            certificates.remove()
        }
    }

    private static var shared: Result<Fixture, Error>?
    private var f: Fixture!

    override func setUpWithError() throws {
        if Self.shared == nil { Self.shared = Result { try Fixture() } }
        f = try Self.shared!.get()
        XCTAssertTrue(f.node1.isRunning, f.node1.log)
    }

    override class func tearDown() {
        if case .success(let fixture)? = shared { fixture.remove() }
        shared = nil
        super.tearDown()
    }

    /// Connected to node1's file port as node3, Hello exchanged.
    private func member() throws -> HostilePeer {
        let peer = try HostilePeer(port: f.cluster.member("node1").filePort, caPath: f.certificates.caPath,
                                   certificatePath: f.certificates.certificatePath("node3"),
                                   keyPath: f.certificates.keyPath("node3"))
        peer.sendHello(Hello(clusterID: peer.clusterID, nodeName: "node3", channel: .file))
        XCTAssertEqual(peer.waitForHello()?.nodeName, "node1", "node1's Hello")
        return peer
    }

    private func request(_ id: UInt32, _ name: String) -> FetchRequest {
        FetchRequest(requestID: id, path: name, version: f.files[name]!.version)
    }

    /// Sends the requests in one write, so node1 has them all at once.
    private func send(_ requests: [(UInt32, String)], to peer: HostilePeer) {
        peer.send(requests.flatMap { HostilePeer.encode(.request(request($0.0, $0.1))) })
    }

    /// Where each request's header, data and end came, in frame order.
    private struct Timeline {
        var headers: [UInt32: Int] = [:]
        var ends: [UInt32: Int] = [:]
        /// The most of the `streamed` requests under way at once (header seen, end not yet).
        var mostAtOnce = 0
        /// Requests whose data came out of order.
        var outOfOrder: Set<UInt32> = []

        init(_ frames: [Frame], streamed: Set<UInt32> = []) {
            var open: Set<UInt32> = []
            var next: [UInt32: UInt64] = [:]
            for (position, frame) in frames.enumerated() {
                var payload = frame.payload
                guard let message = try? TransferMessage.decode(type: frame.type, payload: &payload) else { continue }
                switch message {
                case .header(let header):
                    headers[header.requestID] = position
                    if header.status == .ok, streamed.contains(header.requestID) { open.insert(header.requestID) }
                    mostAtOnce = max(mostAtOnce, open.count)
                case let .data(id, offset, bytes):
                    if offset != next[id, default: 0] { outOfOrder.insert(id) }
                    next[id] = offset + UInt64(bytes.count)
                case .end(let id):
                    ends[id] = position
                    open.remove(id)
                default: break
                }
            }
        }
    }

    func testASmallFileBehindALargeOneIsAnsweredBetweenItsChunks() throws {
        let peer = try member()
        send([(1, Fixture.large), (2, Fixture.small)], to: peer)
        // Not reading: node1 fills the socket buffers with the large file
        // and must then choose what goes next.
        Thread.sleep(forTimeInterval: 0.3)
        let large = peer.waitForAnswer(1, timeout: 30_000)
        let small = peer.answer(2)
        XCTAssertEqual(large.header?.status, .ok, "\(large.header.map { "\($0)" } ?? "no answer")")
        XCTAssertTrue(large.ended)
        XCTAssertTrue(large.data == f.files[Fixture.large]!.content, "the large file arrived changed (\(large.data.count) bytes)")
        XCTAssertEqual(small.header?.status, .ok)
        XCTAssertEqual(small.data, f.files[Fixture.small]!.content)
        XCTAssertTrue(small.ended)
        let timeline = Timeline(peer.transferFrames)
        XCTAssertTrue(timeline.outOfOrder.isEmpty, "data out of order for \(timeline.outOfOrder)")
        let smallEnd = try XCTUnwrap(timeline.ends[2])
        let largeEnd = try XCTUnwrap(timeline.ends[1])
        print("small file ended at frame \(smallEnd), the large file at frame \(largeEnd)")
        XCTAssertLessThan(smallEnd, largeEnd, "the small file waited for the whole large one")
        XCTAssertLessThan(smallEnd, largeEnd / 2, "the small file waited for most of the large one")
        XCTAssertFalse(peer.closed)
    }

    func testLargeFilesShareTheChannelAFewAtATimeAndASmallOneGoesBetween() throws {
        let peer = try member()
        var names: [UInt32: String] = [:]
        for (i, name) in Fixture.medium.enumerated() { names[UInt32(10 + i)] = name }
        names[100] = Fixture.small
        send(names.keys.sorted().map { ($0, names[$0]!) }, to: peer)
        Thread.sleep(forTimeInterval: 0.3)
        for id in names.keys.sorted() {
            let answer = peer.waitForAnswer(id, timeout: 30_000)
            XCTAssertEqual(answer.header?.status, .ok, "\(names[id]!): \(answer.header.map { "\($0)" } ?? "no answer")")
            XCTAssertTrue(answer.ended, names[id]!)
            XCTAssertTrue(answer.data == f.files[names[id]!]!.content, "\(names[id]!) arrived changed (\(answer.data.count) bytes)")
        }
        let timeline = Timeline(peer.transferFrames, streamed: Set(names.keys.filter { $0 != 100 }))
        XCTAssertTrue(timeline.outOfOrder.isEmpty, "data out of order for \(timeline.outOfOrder)")
        XCTAssertEqual(timeline.mostAtOnce, TransferServer.maxStreams, "files streamed at once")
        let firstLargeEnd = try XCTUnwrap(names.keys.filter { $0 != 100 }.compactMap { timeline.ends[$0] }.min())
        let smallEnd = try XCTUnwrap(timeline.ends[100])
        XCTAssertLessThan(smallEnd, firstLargeEnd, "the small file waited for a large one to end")
        XCTAssertFalse(peer.closed)
    }

    func testACancelledStreamEndsWithoutItsEndAndTheOthersGoOn() throws {
        let peer = try member()
        send([(1, Fixture.large), (2, Fixture.medium[0])], to: peer)
        // Not reading: the large file is under way, held up by the full socket.
        Thread.sleep(forTimeInterval: 0.3)
        peer.pump(milliseconds: 2)
        XCTAssertNotNil(peer.answer(1).header, "the large file's stream had not begun")
        peer.send(HostilePeer.encode(.cancel(requestID: 1)))
        let medium = peer.waitForAnswer(2, timeout: 30_000)
        XCTAssertTrue(medium.ended)
        XCTAssertTrue(medium.data == f.files[Fixture.medium[0]]!.content, "the medium file arrived changed")
        // Whatever of the large file was in flight arrives; then nothing more, and no end.
        peer.pump(milliseconds: 500)
        let large = peer.answer(1)
        XCTAssertFalse(large.ended, "a cancelled request is not ended")
        XCTAssertLessThan(large.data.count, f.files[Fixture.large]!.content.count, "the cancelled file was sent whole")
        // The channel still serves.
        peer.sendRequest(request(3, Fixture.small))
        let small = peer.waitForAnswer(3)
        XCTAssertEqual(small.data, f.files[Fixture.small]!.content)
        XCTAssertTrue(small.ended)
    }
}
