import Logging

/// One authenticated peer connection: TLS, then a Hello each way, then
/// length-prefixed frames. Owns its TLSConnection; loop thread only.
///
/// Lifetime: the connection keeps itself alive while open; `onClose` runs
/// once, last. A malformed frame or a failed Hello check closes only this
/// channel, with the reason logged.
public final class Channel {
    /// Frame type of the Hello, the first frame each way.
    static let helloFrameType: UInt8 = 0
    /// A peer that finished TLS but sends no Hello within this is dropped.
    static let helloTimeout: UInt64 = 10_000

    public let kind: Hello.Channel
    public let connection: TLSConnection
    /// The peer's node name, once its Hello was checked.
    public private(set) var peerName: NodeName?
    public var isReady: Bool { peerName != nil && !closed }

    /// The peer's Hello passed every check; frames follow.
    public var onReady: ((NodeName) -> Void)?
    /// A frame from the peer (after the Hello).
    public var onFrame: ((Frame) -> Void)?
    /// `send` returned false and the buffered bytes drained below half.
    public var onWritable: (() -> Void)?
    /// The channel is closed; the error says why (nil: clean close).
    public var onClose: ((Error?) -> Void)?

    private let localName: NodeName
    private let clusterID: [UInt8]
    private var decoder = FrameDecoder()
    private var identity: TLSPeerIdentity?
    private var helloTimer: LoopTimer?
    private var closed = false
    private var logger: Logger

    public init(connection: TLSConnection, kind: Hello.Channel, localName: NodeName, clusterID: [UInt8], logger: Logger) {
        self.connection = connection
        self.kind = kind
        self.localName = localName
        self.clusterID = clusterID
        self.logger = logger
        self.logger[metadataKey: "channel"] = "\(kind)"
    }

    /// Starts the TLS handshake; the Hello goes out as soon as it completes.
    public func start() {
        // The connection keeps itself alive while open and drops these callbacks
        // when it closes: that is what keeps this channel alive, and no longer.
        connection.onEstablished = { [self] identity in
            self.identity = identity
            let hello = Hello(clusterID: clusterID, nodeName: localName, channel: kind)
            _ = connection.write(Frame(type: Channel.helloFrameType, payload: hello.encoded()).encoded())
            helloTimer = connection.loop.schedule(after: Channel.helloTimeout) { [weak self] in
                guard let self, self.peerName == nil else { return }
                self.fail("no Hello within \(Channel.helloTimeout / 1000) s after the TLS handshake")
            }
        }
        connection.onData = { [self] bytes in
            decoder.append(bytes)
            drainFrames()
        }
        connection.onWritable = { [self] in onWritable?() }
        connection.onClose = { [self] error in
            closed = true
            helloTimer?.close()
            helloTimer = nil
            let callback = onClose
            onReady = nil
            onFrame = nil
            onWritable = nil
            onClose = nil
            callback?(error)
        }
        connection.start()
    }

    private func drainFrames() {
        while !closed {
            let frame: Frame?
            do {
                frame = try decoder.next()
            } catch {
                fail("malformed frame from \(peerName ?? connection.stream.peerAddress ?? "?"): \(error)")
                return
            }
            guard let frame else { return }
            if peerName == nil {
                receiveHello(frame)
            } else {
                onFrame?(frame)
            }
        }
    }

    private func receiveHello(_ frame: Frame) {
        do {
            guard frame.type == Channel.helloFrameType else {
                throw HelloError.malformed("expected a Hello, got frame type \(frame.type)")
            }
            var payload = frame.payload
            let hello = try Hello.decode(&payload)
            // gen-certs.sh puts "localhost" in every certificate: it proves no name.
            let names = identity.map { ([$0.commonName].compactMap { $0 } + $0.dnsNames).filter { $0 != "localhost" } } ?? []
            try hello.check(expectedClusterID: clusterID, certificateNames: names, expectedChannel: kind)
            guard hello.nodeName != localName else {
                throw HelloError.malformed("the peer claims our own name \(localName)")
            }
            peerName = hello.nodeName
            logger[metadataKey: "peer"] = "\(hello.nodeName)"
            helloTimer?.close()
            helloTimer = nil
            onReady?(hello.nodeName)
        } catch {
            fail("refused peer \(connection.stream.peerAddress ?? "?"): \(error)")
        }
    }

    /// Queues one encoded frame (or several back to back). Returns false when
    /// the peer is slow: wait for `onWritable` before sending more.
    @discardableResult
    public func send(_ bytes: ByteBuffer) -> Bool {
        guard !closed else { return false }
        return connection.write(bytes)
    }

    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        guard !closed else { return false }
        return connection.write(bytes)
    }

    /// Sends a frame whose payload is `prefix` followed by `body`, without
    /// copying `body` into a frame buffer (file data).
    @discardableResult
    public func send(type: UInt8, prefix: ByteBuffer, body: UnsafeRawBufferPointer) -> Bool {
        guard !closed else { return false }
        var head = ByteBuffer(bytes: Frame.header(type: type, payloadLength: prefix.readableBytes + body.count))
        head.writeBytes(prefix.readableView)
        _ = connection.write(head)
        return connection.write(body)
    }

    public var isWritable: Bool { !closed && connection.isWritable }

    /// Closes cleanly (close_notify); `onClose` follows.
    public func close() {
        guard !closed else { return }
        connection.close()
    }

    private func fail(_ reason: String) {
        logger.warning("\(reason)")
        close()
    }
}
