import Logging

/// A TLS 1.3 connection over a TCP stream: the thin adapter that feeds a
/// `TLSEngine` what the stream reads and writes what the engine produces,
/// with a handshake deadline, write backpressure and a graceful close
/// (close_notify, FIN, then wait for the peer's end). Loop thread only.
///
/// Set the callbacks, then `start()`. `onEstablished` runs once, with the
/// verified peer certificate's names, before any `onData`; `onClose` runs
/// once, last, when the socket is closed (nil after a clean close).
/// Lifetime: an open connection keeps itself alive through its stream's
/// callbacks until the socket is closed, then drops every callback.
public final class TLSConnection {
    /// 10 s: a handshake is a few round trips; a peer that needs longer is stuck or hostile.
    public static let defaultHandshakeTimeout: UInt64 = 10_000
    /// Ciphertext the connection holds for the socket before `write` says stop.
    public static let defaultWriteLimit = 4 * 1024 * 1024
    /// The write size that goes out best: 16 full records, one socket write.
    public static let preferredWriteSize = 256 * 1024
    /// After our close_notify and FIN, how long we wait for the peer's end
    /// before closing anyway (closing with unread input would send a RST
    /// that can destroy what we sent last, e.g. the alert).
    static let lingerTimeout: UInt64 = 2_000

    /// The handshake finished and the peer's certificate was verified.
    public var onEstablished: ((TLSPeerIdentity) -> Void)?
    /// Decrypted bytes, valid only during the call (the buffer is reused).
    public var onData: ((UnsafeRawBufferPointer) -> Void)?
    /// `write` returned false earlier and the buffered bytes fell to half the limit.
    public var onWritable: (() -> Void)?
    /// The socket is closed; the error says why, nil after a clean close.
    public var onClose: ((Error?) -> Void)?

    public let stream: TCPStream
    public let loop: EventLoop
    /// The verified peer, from the end of the handshake on.
    public private(set) var peer: TLSPeerIdentity?
    /// Ciphertext handed to the stream and not yet written to the kernel.
    public private(set) var bufferedByteCount = 0
    public let writeLimit: Int

    private enum Phase {
        case idle, handshaking, established
        /// close_notify or an alert is on its way; input is drained and ignored.
        case closing
        case closed
    }
    private var phase = Phase.idle
    private let engine: TLSEngine
    private let handshakeTimeout: UInt64
    private var timer: LoopTimer?
    private var wantsWritable = false
    private var closeError: Error?
    /// The stream reported EOF or a read error: nothing more will arrive.
    private var readEnded = false
    private var readingPaused = false
    private var logger: Logger

    /// Wraps a connected (or accepted) `stream`. The context's role says
    /// whether this end speaks first (client) or waits (server).
    public init(stream: TCPStream, context: TLSContext, loop: EventLoop,
                handshakeTimeout: UInt64 = TLSConnection.defaultHandshakeTimeout,
                writeLimit: Int = TLSConnection.defaultWriteLimit,
                logger: Logger = Logger(label: "nsyncd.tls")) throws {
        self.stream = stream
        self.loop = loop
        self.engine = try TLSEngine(context: context)
        self.handshakeTimeout = handshakeTimeout
        self.writeLimit = writeLimit
        self.logger = logger
        self.logger[metadataKey: "peer"] = "\(stream.peerAddress ?? "?")"
    }

    /// Starts reading and the handshake.
    public func start() {
        guard case .idle = phase else { return }
        phase = .handshaking
        let timer = LoopTimer(loop: loop)
        self.timer = timer
        timer.start(after: handshakeTimeout) { [weak self] in self?.handshakeTimedOut() }
        startReading()
        guard case .handshaking = phase else { return }
        engine.startHandshake()
        flush()
    }

    /// Encrypts `bytes` and queues them (the caller's memory is free again on
    /// return). Returns false once the buffered ciphertext reaches
    /// `writeLimit`: stop writing until `onWritable`. The bytes are always
    /// accepted while established, so the buffer exceeds the limit by at most
    /// one write: keep single writes at most `preferredWriteSize`. Before
    /// `onEstablished` and after `close()` it writes nothing.
    @discardableResult
    public func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard case .established = phase else {
            if case .handshaking = phase { assertionFailure("TLSConnection.write before onEstablished") }
            return false
        }
        do {
            try engine.write(bytes)
        } catch {
            fail(error)
            return false
        }
        flush()
        if bufferedByteCount >= writeLimit {
            wantsWritable = true
            return false
        }
        return true
    }

    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { write($0) }
    }

    @discardableResult
    public func write(_ bytes: ArraySlice<UInt8>) -> Bool {
        bytes.withUnsafeBytes { write($0) }
    }

    @discardableResult
    public func write(_ buffer: ByteBuffer) -> Bool {
        write(buffer.readableView)
    }

    @discardableResult
    public func write(_ buffer: IOBuffer) -> Bool {
        buffer.withUnsafeBytes { write($0) }
    }

    /// True while established and below the write limit.
    public var isWritable: Bool {
        if case .established = phase { return bufferedByteCount < writeLimit }
        return false
    }

    /// Stops delivering `onData` (TCP flow control then slows the peer).
    public func pauseReading() {
        guard !readingPaused, !readEnded else { return }
        switch phase {
        case .handshaking, .established:
            readingPaused = true
            stream.stopReading()
        case .idle, .closing, .closed:
            break
        }
    }

    /// Whether `pauseReading` holds `onData` back.
    public var isReadingPaused: Bool { readingPaused }

    /// Resumes `onData` after `pauseReading`.
    public func resumeReading() {
        guard readingPaused else { return }
        readingPaused = false
        switch phase {
        case .handshaking, .established, .closing:
            startReading()
        case .idle, .closed:
            break
        }
    }

    private func startReading() {
        do {
            try stream.startReading(onRead: { [self] in didRead($0) }, onEnd: { [self] in didEnd($0) })
        } catch {
            fail(error)
        }
    }

    /// Closes cleanly: sends close_notify after the queued data, then FIN,
    /// waits briefly for the peer's end, and closes; `onClose(nil)` follows.
    public func close() {
        beginClosing(nil)
    }

    /// Closes the socket now, without close_notify or waiting for the peer:
    /// for a peer taken for dead, which would read neither. `onClose(error)` follows.
    public func abort(_ error: Error) {
        switch phase {
        case .closed:
            return
        case .closing:
            if closeError == nil { closeError = error }
            timer?.close()
            timer = nil
            closeSocket()
        case .idle, .handshaking, .established:
            closeError = error
            phase = .closing
            wantsWritable = false
            closeSocket()
        }
    }

    // MARK: - Events

    private func didRead(_ bytes: UnsafeRawBufferPointer) {
        switch phase {
        case .handshaking, .established:
            break
        case .idle, .closing, .closed:
            return  // draining after close: input is ignored
        }
        var failure: TLSError?
        var peerClosed = false
        engine.receive(bytes) { event in
            switch event {
            case .established(let identity):
                timer?.close()
                timer = nil
                peer = identity
                phase = .established
                onEstablished?(identity)
            case .plaintext(let plaintext):
                if case .established = phase { onData?(plaintext) }
            case .peerClosed:
                peerClosed = true
            case .failed(let error):
                failure = error
            }
        }
        flush()
        if let failure {
            fail(failure)
        } else if peerClosed {
            // Our close_notify went out in the flush above; the peer sends no more.
            beginClosing(nil, peerDone: true)
        }
    }

    private func didEnd(_ error: UVError?) {
        readEnded = true
        if case .closing = phase {
            // The peer's FIN (or reset) after our close: the normal end.
            return closeSocket()
        }
        if let error {
            return fail(error)
        }
        if let tlsError = engine.receiveEOF() {
            return fail(tlsError)
        }
        beginClosing(nil, peerDone: true)
    }

    private func handshakeTimedOut() {
        guard case .handshaking = phase else { return }
        fail(TLSError(kind: .handshakeTimeout, operation: "TLS handshake",
                      reasons: ["not finished after \(Double(handshakeTimeout) / 1000) s"]))
    }

    private func fail(_ error: Error) {
        switch phase {
        case .closing, .closed:
            return
        case .idle, .handshaking, .established:
            if let error = error as? TLSError, error.kind == .handshake || error.kind == .handshakeTimeout {
                logger.warning("refused connection: \(error)")
            } else {
                logger.info("connection failed: \(error)")
            }
            beginClosing(error)
        }
    }

    // MARK: - Output

    /// Hands every pending ciphertext buffer to the stream.
    private func flush() {
        engine.output.take { buffer in
            bufferedByteCount += buffer.count
            stream.write(buffer) { [self] error in didWrite(buffer, error) }
        }
    }

    private func didWrite(_ buffer: IOBuffer, _ error: UVError?) {
        bufferedByteCount -= buffer.count
        engine.output.recycle(buffer)
        if let error {
            if !error.isCanceled { fail(error) }
            return
        }
        if wantsWritable, bufferedByteCount <= writeLimit / 2, case .established = phase {
            wantsWritable = false
            onWritable?()
        }
    }

    // MARK: - Closing

    /// close_notify (if established) or nothing (an alert is already queued),
    /// then FIN after the queued writes, then wait for the peer's end.
    private func beginClosing(_ error: Error?, peerDone: Bool = false) {
        switch phase {
        case .closing, .closed:
            return
        case .idle:
            closeError = error
            phase = .closing
            return closeSocket()
        case .handshaking, .established:
            break
        }
        closeError = error
        phase = .closing
        wantsWritable = false
        if readingPaused {
            // Drain (and ignore) input until the peer's end, so the close is
            // not a reset that could destroy our last bytes.
            readingPaused = false
            startReading()
        }
        engine.close()
        flush()
        timer?.close()
        timer = nil
        stream.shutdown { [weak self] _ in
            guard let self, case .closing = phase else { return }
            if peerDone || readEnded { return closeSocket() }
            // Wait for the peer's FIN, bounded: a peer that never closes
            // must not keep the socket open.
            let linger = LoopTimer(loop: loop)
            timer = linger
            linger.start(after: Self.lingerTimeout) { [weak self] in self?.closeSocket() }
        }
    }

    private func closeSocket() {
        guard case .closing = phase else { return }
        phase = .closed
        timer?.close()
        timer = nil
        let error = closeError
        stream.close { [self] in
            let callback = onClose
            onEstablished = nil
            onData = nil
            onWritable = nil
            onClose = nil
            callback?(error)
        }
    }
}
