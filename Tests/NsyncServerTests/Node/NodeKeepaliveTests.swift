import Foundation
import XCTest
@testable import NsyncServer

/// Liveness of peer channels against a real nsyncd started with
/// `--peer-timeout 2`, over real TCP and TLS: it sends a keepalive every
/// second on both kinds of channel, closes one whose peer falls silent
/// (logging why), keeps one whose peer sends keepalives, closes one that
/// sends a malformed keepalive, and abandons a dial that gets no answer.
/// node2 is a configured member that is down; the test speaks as node2.
final class NodeKeepaliveTests: XCTestCase {
    private var scratch: DaemonScratch!
    private var certificates: TestCertificates!
    private var cluster: DaemonCluster!
    private var node1: DaemonProcess!

    override func setUpWithError() throws {
        scratch = try DaemonScratch(name)
        certificates = try TestCertificates(nodes: ["node1", "node2"])
        cluster = try DaemonCluster(names: ["node1", "node2"], certificates: certificates, in: scratch)
        node1 = try cluster.start("node1", in: scratch, extra: ["--peer-timeout", "2", "--log-level", "debug"])
        DaemonWait.until("node1 to start", timeout: 15, context: { self.node1.log }) { node1.log.contains("nsyncd started") }
    }

    override func tearDown() {
        scratch?.remove()
        certificates?.remove()
    }

    /// A connection to node1's `kind` port as node2, Hellos exchanged.
    private func connect(_ kind: Hello.Channel, file: StaticString = #filePath, line: UInt = #line) throws -> HostilePeer {
        let member = cluster.member("node1")
        let peer = try HostilePeer(port: kind == .raft ? member.clusterPort : member.filePort, caPath: certificates.caPath,
                                   certificatePath: certificates.certificatePath("node2"), keyPath: certificates.keyPath("node2"))
        peer.sendHello(Hello(clusterID: peer.clusterID, nodeName: "node2", channel: kind))
        XCTAssertEqual(peer.waitForHello()?.nodeName, "node1", "node1's Hello on the \(kind) port", file: file, line: line)
        return peer
    }

    func testASilentPeerIsDroppedAfterThePeerTimeoutOnBothKindsOfChannel() throws {
        for kind in [Hello.Channel.file, .raft] {
            let before = node1.log.components(separatedBy: "heard nothing from node2").count
            let connectingAt = Date()
            let peer = try connect(kind)
            XCTAssertTrue(peer.waitForClose(timeout: 8_000), "node1 kept a silent \(kind) channel open")
            let after = Date().timeIntervalSince(connectingAt)
            XCTAssertGreaterThanOrEqual(after, 1.5, "\(kind): node1 closed well before the 2 s timeout")
            XCTAssertGreaterThanOrEqual(peer.keepalives.count, 1, "\(kind): node1 sent no keepalive while waiting")
            XCTAssertTrue(peer.keepalives.allSatisfy { $0.payload.readableBytes == 0 }, "\(kind): keepalives are empty")
            XCTAssertNil(peer.malformed)
            DaemonWait.until("node1 to log why it closed the \(kind) channel", timeout: 3, context: { self.node1.log }) {
                node1.log.components(separatedBy: "heard nothing from node2").count > before
            }
        }
        XCTAssertTrue(node1.isRunning, node1.log)
    }

    func testAPeerSendingKeepalivesStaysConnectedPastTheTimeout() throws {
        let peer = try connect(.file)
        let keepalive = Frame.header(type: Channel.keepaliveFrameType, payloadLength: 0)
        for _ in 0..<10 {  // 5 s, well past the 2 s timeout
            peer.send(keepalive)
            peer.pump(milliseconds: 500)
            XCTAssertFalse(peer.closed, "node1 closed a channel whose peer kept sending keepalives")
        }
        XCTAssertGreaterThanOrEqual(peer.keepalives.count, 5, "node1 sends one every 500 ms (a quarter of the timeout)")
        // Still served: a request for a file not offered is refused with an error header.
        peer.sendRequest(FetchRequest(requestID: 1, path: "not-offered.bin", version: 0))
        let answer = peer.waitForAnswer(1)
        XCTAssertEqual(answer.header?.status, .notFound, "\(answer)")
        XCTAssertFalse(peer.closed)
    }

    func testAKeepaliveWithAPayloadClosesOnlyThatChannel() throws {
        let peer = try connect(.raft)
        peer.send(Frame(type: Channel.keepaliveFrameType, payload: [1, 2, 3]).encoded())
        // Well before the 2 s silence limit would close it anyway.
        XCTAssertTrue(peer.waitForClose(timeout: 1_500), "node1 accepted a keepalive with a payload")
        DaemonWait.until("node1 to log the malformed keepalive", timeout: 3, context: { self.node1.log }) {
            node1.log.contains("malformed keepalive from node2: 3 payload bytes")
        }
        let other = try connect(.file)
        XCTAssertFalse(other.closed)
        XCTAssertTrue(node1.isRunning, node1.log)
    }

    /// A large file is offered to the peers while it is hashed: never to a
    /// connection whose Hello has not come (nothing but the node's Hello may
    /// go before it; a debug build asserted when one was mid-handshake).
    func testAnOfferIsNotSentBeforeThePeersHello() throws {
        let member = cluster.member("node1")
        let waiting = try HostilePeer(port: member.filePort, caPath: certificates.caPath,
                                      certificatePath: certificates.certificatePath("node2"), keyPath: certificates.keyPath("node2"))
        let greeted = try connect(.file)
        let fd = open(member.root + "/large.bin", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(ftruncate(fd, 64 << 20), 0)  // 64 MiB of zeros: large enough to be offered
        close(fd)
        DaemonWait.until("node1 to offer large.bin", timeout: 15, context: { self.node1.log }) {
            node1.log.contains("offering large.bin")
        }
        var offered = false
        for _ in 0..<40 where !offered {  // at most 2 s
            greeted.pump(milliseconds: 50)
            offered = greeted.transferFrames.contains { $0.type == TransferMessage.FrameType.offer.rawValue }
        }
        XCTAssertTrue(offered, "the peer that sent its Hello got the offer")
        waiting.pump(milliseconds: 200)
        XCTAssertEqual(waiting.waitForHello()?.nodeName, "node1", "node1's own Hello goes first")
        XCTAssertTrue(waiting.transferFrames.isEmpty, "frames before our Hello: \(waiting.transferFrames.map(\.type))")
        XCTAssertFalse(waiting.closed)
        XCTAssertTrue(node1.isRunning, node1.log)
    }

    func testADialThatGetsNoAnswerIsAbandonedAfterThePeerTimeoutAndTriedAgain() throws {
        // node2's cluster port drops every SYN, as a host cut off the network
        // would: a listener whose accept queue is full and never accepted.
        let member = cluster.member("node2")
        let blackhole = try SilentListener(port: member.clusterPort)
        let timedOut = "connecting to node2@127.0.0.1:\(member.clusterPort):\(member.filePort) (raft) timed out after 2.0 s"
        DaemonWait.until("node1 to give up a dial that gets no answer", timeout: 15, context: { self.node1.log }) {
            node1.log.contains(timedOut)
        }
        // node2 comes up on that port: node1's next dial reaches it.
        blackhole.close()
        let node2 = try cluster.start("node2", in: scratch)
        DaemonWait.until("node1 to connect to node2's raft port", timeout: 20, context: { self.node1.log + node2.log }) {
            node1.log.contains("channel=raft node=node1 peer=node2 [NsyncServer] connected to peer")
        }
    }
}

/// A TCP listener on 127.0.0.1 that never accepts, with its accept queue
/// filled by connections of its own: the kernel then drops every further
/// SYN, so a connect to its port waits unanswered (a host that is down or
/// cut off). Test thread.
private final class SilentListener {
    private var descriptors: [Int32] = []

    init(port: Int) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw DaemonTestError("socket: errno \(errno)") }
        descriptors.append(listener)
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 0) == 0 else {
            close()
            throw DaemonTestError("cannot listen on 127.0.0.1:\(port): errno \(errno)")
        }
        // Backlog 0 holds one connection; two more fill it for good.
        for _ in 0..<3 {
            let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard client >= 0 else { continue }
            descriptors.append(client)
            _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        usleep(100_000)
    }

    deinit { close() }

    func close() {
        for fd in descriptors { Glibc.close(fd) }
        descriptors.removeAll()
    }
}
