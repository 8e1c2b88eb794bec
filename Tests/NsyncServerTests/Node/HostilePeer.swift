import Foundation
import Logging
import XCTest
@testable import NsyncServer

/// A peer that writes whatever the test tells it to a node's port: real TCP
/// to 127.0.0.1, real TLS 1.3 with the certificate it is given, and then any
/// Hello, frame or raw bytes, correct or not. It keeps every frame the node
/// sends back and notices when the node closes the connection. Runs its own
/// EventLoop on the test thread; every wait is bounded.
final class HostilePeer {
    let loop: EventLoop
    let connection: TLSConnection
    /// The cluster id of the CA this peer trusts (what a correct Hello carries).
    let clusterID: [UInt8]
    /// Frames the node sent, in order (its Hello first).
    private(set) var frames: [Frame] = []
    /// Every plaintext byte the node sent, to look for content that must never leak.
    private(set) var receivedBytes: [UInt8] = []
    private(set) var established = false
    private(set) var closed = false
    private(set) var closeError: Error?
    private var decoder = FrameDecoder()
    private var malformedInput: Error?

    /// Connects and completes the TLS handshake (throws if either fails within 5 s).
    /// `checksOwnCertificate: false` lets it present a certificate the CA did
    /// not sign or that expired, as an intruder would.
    init(port: Int, caPath: String, certificatePath: String, keyPath: String, checksOwnCertificate: Bool = true) throws {
        loop = try EventLoop()
        let context = try TLSContext(role: .client, caPath: caPath, certificatePath: certificatePath, keyPath: keyPath,
                                     checksOwnCertificate: checksOwnCertificate)
        clusterID = context.clusterID
        let stream = TCPStream(loop: loop)
        var connectResult: UVError??
        stream.connect(host: "127.0.0.1", port: port) { connectResult = .some($0) }
        guard loop.run(until: { connectResult != nil }, timeout: 5_000) else {
            stream.close()
            throw DaemonTestError("connect to 127.0.0.1:\(port) timed out")
        }
        if let error = connectResult! {
            stream.close()
            throw DaemonTestError("connect to 127.0.0.1:\(port): \(error)")
        }
        var logger = Logger(label: "hostile-peer")
        logger.logLevel = .critical
        connection = try TLSConnection(stream: stream, context: context, loop: loop, logger: logger)
        connection.onEstablished = { [weak self] _ in self?.established = true }
        connection.onData = { [weak self] bytes in
            guard let self else { return }
            receivedBytes.append(contentsOf: bytes)
            decoder.append(bytes)
            do {
                while let frame = try decoder.next() { frames.append(frame) }
            } catch {
                malformedInput = error
            }
        }
        connection.onClose = { [weak self] error in
            self?.closed = true
            self?.closeError = error
        }
        connection.start()
        guard loop.run(until: { established || closed }, timeout: 5_000), established else {
            throw DaemonTestError("TLS handshake with 127.0.0.1:\(port) failed: \(closeError.map { "\($0)" } ?? "timed out")")
        }
    }

    /// Closing the loop closes the connection (callbacks no longer reach this object).
    deinit {
        loop.close()
    }

    // MARK: sending

    func send(_ bytes: [UInt8]) {
        _ = connection.write(bytes)
        pump()
    }

    func sendHello(_ hello: Hello) {
        send(Frame(type: Channel.helloFrameType, payload: hello.encoded()).encoded())
    }

    /// A Hello with raw payload bytes (a bad magic, a truncated one).
    func sendHello(payload: [UInt8]) {
        send(Frame(type: Channel.helloFrameType, payload: payload).encoded())
    }

    func sendRequest(_ request: FetchRequest) {
        send(HostilePeer.encode(.request(request)))
    }

    static func encode(_ message: TransferMessage) -> [UInt8] {
        Frame(type: message.frameType.rawValue, payload: {
            var buffer = ByteBuffer()
            message.encodePayload(into: &buffer)
            return buffer
        }()).encoded()
    }

    /// Lets the loop run briefly so writes leave and replies arrive.
    func pump(milliseconds: UInt64 = 10) {
        loop.run(until: { false }, timeout: milliseconds)
    }

    // MARK: waiting

    /// The node's Hello (the first frame), once it arrived.
    func waitForHello(timeout: UInt64 = 5_000) -> Hello? {
        loop.run(until: { !frames.isEmpty || closed }, timeout: timeout)
        guard var payload = frames.first.map({ $0.payload }), frames.first?.type == Channel.helloFrameType else { return nil }
        return try? Hello.decode(&payload)
    }

    /// Runs until the node closes the connection; false after `timeout` ms.
    func waitForClose(timeout: UInt64) -> Bool {
        loop.run(until: { closed }, timeout: timeout)
    }

    /// What the node answered to request `id`.
    struct Answer {
        var header: FetchHeader?
        var data: [UInt8] = []
        var ended = false
        /// Data (bytes) and `.same` (nil) frames, in order.
        var pieces: [(offset: UInt64, length: UInt64, bytes: [UInt8]?)] = []
        /// `.zeros` frames, in order.
        var zeros: [(offset: UInt64, length: UInt64)] = []
    }

    /// Runs until request `id` is answered completely (a refusal header, or
    /// ok, data and end), the connection closes, or `timeout` ms pass.
    func waitForAnswer(_ id: UInt32, timeout: UInt64 = 10_000) -> Answer {
        var answer = Answer()
        loop.run(until: {
            answer = self.answer(id)
            if let header = answer.header, header.status != .ok { return true }
            return answer.ended || closed
        }, timeout: timeout)
        return answer
    }

    /// The transfer messages received so far for `id`.
    func answer(_ id: UInt32) -> Answer {
        var answer = Answer()
        for frame in frames.dropFirst() {
            var payload = frame.payload
            guard let message = try? TransferMessage.decode(type: frame.type, payload: &payload) else { continue }
            switch message {
            case .header(let header) where header.requestID == id: answer.header = header
            case let .data(rid, offset, bytes) where rid == id:
                answer.data += bytes
                answer.pieces.append((offset, UInt64(bytes.count), Array(bytes)))
            case let .same(rid, offset, length) where rid == id: answer.pieces.append((offset, length, nil))
            case let .zeros(rid, offset, length) where rid == id: answer.zeros.append((offset, length))
            case .end(let rid) where rid == id: answer.ended = true
            default: break
            }
        }
        return answer
    }

    /// Transfer messages (anything after the node's Hello but keepalives) received so far.
    var transferFrames: [Frame] { frames.dropFirst().filter { $0.type != Channel.keepaliveFrameType } }

    /// Keepalive frames received so far.
    var keepalives: [Frame] { frames.dropFirst().filter { $0.type == Channel.keepaliveFrameType } }

    /// Whether `needle` occurs anywhere in what the node sent.
    func received(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, receivedBytes.count >= needle.count else { return false }
        let first = needle[0]
        for start in 0...(receivedBytes.count - needle.count) where receivedBytes[start] == first {
            if receivedBytes[start..<(start + needle.count)].elementsEqual(needle) { return true }
        }
        return false
    }

    /// A frame from the node that did not decode (the node must never send one).
    var malformed: Error? { malformedInput }
}
