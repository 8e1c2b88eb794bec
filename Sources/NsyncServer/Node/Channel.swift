import Logging

/// One authenticated peer connection: TLS, then a Hello each way, then
/// length-prefixed frames. Owns its TLSConnection; loop thread only.
///
/// Lifetime: the connection keeps itself alive while open; `onClose` runs
/// once, last. A malformed frame or a failed Hello check closes only this
/// channel, with the reason logged.
///
/// Liveness: after the Hello both ends send an empty keepalive frame every
/// second, and a channel that hears nothing at all for `silenceLimit` is
/// closed. A peer gone without a word (a partition, a cut cable, a host
/// powered off) is otherwise noticed by TCP after many minutes, or never
/// on a connection with nothing to send: a fetch would wait on it forever
/// while another holder could serve, and after a long partition the
/// retransmission backoff keeps a frozen connection silent for up to two
/// minutes where a new one is up at once.
public final class Channel {
    /// Frame type of the Hello, the first frame each way.
    static let helloFrameType: UInt8 = 0
    /// Frame type of the keepalive (empty payload), on every kind of channel.
    static let keepaliveFrameType: UInt8 = 255
    /// A peer that finished TLS but sends no Hello within this is dropped.
    static let helloTimeout: UInt64 = 10_000
    /// How often each end sends a keepalive (ms), at most: a quarter of
    /// the silence limit when that is shorter, so one late keepalive never
    /// looks like silence.
    static let keepaliveInterval: UInt64 = 1_000
    /// Silence after which a channel is taken for dead, unless set (ms).
    public static let defaultSilenceLimit: UInt64 = 10_000

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
    private var keepaliveTimer: LoopTimer?
    private let silenceLimit: UInt64
    private let interval: UInt64
    /// When the peer was last heard (any bytes), and when the keepalive timer last ran (loop ms).
    private var lastHeard: UInt64 = 0
    private var lastTick: UInt64 = 0
    private var closed = false
    private var logger: Logger

    public init(connection: TLSConnection, kind: Hello.Channel, localName: NodeName, clusterID: [UInt8], logger: Logger,
                silenceLimit: UInt64 = Channel.defaultSilenceLimit) {
        self.connection = connection
        self.kind = kind
        self.localName = localName
        self.clusterID = clusterID
        self.logger = logger
        self.silenceLimit = max(silenceLimit, 1_000)
        interval = min(Channel.keepaliveInterval, self.silenceLimit / 4)
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
            lastHeard = connection.loop.now
            decoder.append(bytes)
            drainFrames()
        }
        connection.onWritable = { [self] in onWritable?() }
        connection.onClose = { [self] error in
            closed = true
            helloTimer?.close()
            helloTimer = nil
            keepaliveTimer?.close()
            keepaliveTimer = nil
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
            } else if frame.type == Channel.keepaliveFrameType {
                guard frame.payload.readableBytes == 0 else {
                    fail("malformed keepalive from \(peerName ?? "?"): \(frame.payload.readableBytes) payload bytes")
                    return
                }
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
            startKeepalive()
            onReady?(hello.nodeName)
        } catch {
            fail("refused peer \(connection.stream.peerAddress ?? "?"): \(error)")
        }
    }

    /// Queues one encoded frame (or several back to back). Returns false when
    /// the peer is slow: wait for `onWritable` before sending more. Before
    /// the peer's Hello (TLS may not even be up) and after a close it sends
    /// nothing and returns false.
    @discardableResult
    public func send(_ bytes: ByteBuffer) -> Bool {
        guard isReady else { return false }
        return connection.write(bytes)
    }

    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        guard isReady else { return false }
        return connection.write(bytes)
    }

    /// Sends a frame whose payload is `prefix` followed by `body`, without
    /// copying `body` into a frame buffer (file data).
    @discardableResult
    public func send(type: UInt8, prefix: ByteBuffer, body: UnsafeRawBufferPointer) -> Bool {
        guard isReady else { return false }
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

    private func startKeepalive() {
        let timer = LoopTimer(loop: connection.loop)
        keepaliveTimer = timer
        lastHeard = connection.loop.now
        lastTick = lastHeard
        timer.start(after: interval, repeating: interval) { [weak self] in
            self?.keepaliveTick()
        }
    }

    private func keepaliveTick() {
        guard !closed else { return }
        let now = connection.loop.now
        defer { lastTick = now }
        if now - lastTick > interval + interval / 2 || connection.isReadingPaused {
            // This loop was held up (the timer ran late, and libuv runs timers
            // before it reads: what arrived meanwhile is not read yet), or we
            // stopped reading (a slow disk): the silence is ours, not the peer's.
            lastHeard = now
        }
        if now - lastHeard >= silenceLimit {
            let reason = "heard nothing from \(peerName ?? "?") for \(Double(now - lastHeard) / 1000) s on the \(kind) channel; "
                + "closing it (the peer or the network is down)"
            logger.warning("\(reason)")
            keepaliveTimer?.close()
            keepaliveTimer = nil
            // A silent peer reads no close_notify: no graceful close, no linger.
            connection.abort(ChannelSilence(reason: reason))
            return
        }
        connection.write(Frame.header(type: Channel.keepaliveFrameType, payloadLength: 0))
    }

    private func fail(_ reason: String) {
        logger.warning("\(reason)")
        close()
    }
}

/// Why a channel was closed: its peer was silent for the channel's limit.
public struct ChannelSilence: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}
