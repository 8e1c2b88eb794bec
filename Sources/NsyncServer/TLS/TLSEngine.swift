import COpenSSL

/// One TLS 1.3 session as a pure state machine, after swift-nio-ssl's
/// SSLConnection: network bytes in (`receive`), plaintext out through a
/// handler, plaintext in (`write`), ciphertext out (`output`). It knows no
/// sockets, clocks or loops, so tests pump bytes between two engines in memory;
/// `TLSConnection` joins it to a TCP stream. Used by one thread at a time
/// (the loop thread of its connection).
final class TLSEngine {
    /// Where the session is in its life.
    enum State {
        case handshaking
        /// Both certificates verified; application data may flow.
        case established(TLSPeerIdentity)
        /// We sent close_notify and wait for the peer's (or for EOF).
        case closing
        /// Both sides are done; no more SSL calls.
        case closed
        /// Fatal: an alert (if any) is in `output`; send it, then close the socket.
        case failed(TLSError)
    }

    /// What a `receive` call produced, in order.
    enum Event {
        case established(TLSPeerIdentity)
        /// Decrypted bytes, valid only during the handler call (the buffer is reused).
        case plaintext(UnsafeRawBufferPointer)
        /// The peer sent close_notify; ours went back into `output`.
        case peerClosed
        case failed(TLSError)
    }

    /// Decrypted records are gathered into this many bytes before one
    /// handler call: fewer, larger deliveries while staying cache-resident.
    static let plaintextCapacity = 64 * 1024

    let context: TLSContext
    /// Ciphertext for the socket: take it after every call.
    let output = TLSOutput()
    private(set) var state: State = .handshaking

    private let ssl: OpaquePointer
    private let bioState: UnsafeMutablePointer<TLSBIOState>
    private let plaintext: UnsafeMutableRawPointer

    init(context: TLSContext) throws {
        self.context = context
        ERR_clear_error()
        guard let ssl = SSL_new(context.raw) else {
            throw TLSError.fromErrorQueue(.configuration, "creating a TLS session")
        }
        bioState = .allocate(capacity: 1)
        bioState.initialize(to: TLSBIOState(source: nil, sourceCount: 0, output: .passUnretained(output)))
        guard let bio = TLSEngineBIO.make(state: bioState) else {
            SSL_free(ssl)
            bioState.deallocate()
            throw TLSError.fromErrorQueue(.configuration, "creating a TLS BIO")
        }
        // One BIO for both directions: SSL_set_bio takes a single reference.
        SSL_set_bio(ssl, bio, bio)
        if context.role == .server {
            SSL_set_accept_state(ssl)
        } else {
            SSL_set_connect_state(ssl)
        }
        self.ssl = ssl
        plaintext = .allocate(byteCount: Self.plaintextCapacity, alignment: 64)
    }

    deinit {
        SSL_free(ssl)  // frees the BIO too
        bioState.deinitialize(count: 1)
        bioState.deallocate()
        plaintext.deallocate()
    }

    var isEstablished: Bool {
        if case .established = state { return true }
        return false
    }

    /// The client speaks first: puts its ClientHello into `output`. A server
    /// waits for bytes; calling this on it does nothing.
    func startHandshake() {
        guard context.role == .client, case .handshaking = state else { return }
        _ = stepHandshake()
    }

    /// Feeds network bytes: advances the handshake and decrypts whatever
    /// records are complete, reporting each step to `handle` in order. All of
    /// `bytes` is consumed (an incomplete record waits inside OpenSSL), unless
    /// the session ends or fails part-way.
    func receive(_ bytes: UnsafeRawBufferPointer, _ handle: (Event) -> Void) {
        guard bytes.count > 0 else { return }
        bioState.pointee.source = bytes.baseAddress
        bioState.pointee.sourceCount = bytes.count
        defer {
            bioState.pointee.source = nil
            bioState.pointee.sourceCount = 0
        }
        if case .handshaking = state {
            switch stepHandshake() {
            case .some(.established(let peer)):
                handle(.established(peer))
            case .some(let event):
                handle(event)
                return
            case nil:
                return
            }
        }
        readRecords(handle)
    }

    /// The peer closed TCP. After our close_notify that is the normal end;
    /// otherwise the stream was cut (a truncation attack looks the same).
    func receiveEOF() -> TLSError? {
        switch state {
        case .closing, .closed:
            state = .closed
            return nil
        case .failed(let error):
            return error
        case .handshaking:
            return fail(TLSError(kind: .handshake, operation: "TLS handshake failed",
                                 reasons: ["the peer closed the connection during the handshake (is it an nsyncd node using TLS?)"]))
        case .established:
            return fail(TLSError(kind: .truncated, operation: "TLS connection ended",
                                 reasons: ["the peer closed TCP without a TLS close_notify"]))
        }
    }

    /// Encrypts all of `bytes` into `output`, reading straight from the
    /// caller's memory. Only while established.
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard case .established = state else {
            throw TLSError(kind: .misuse, operation: "TLS write", reasons: ["the session is \(stateName), not established"])
        }
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        var written = 0
        ERR_clear_error()
        // Our BIO accepts every record, so one call encrypts everything.
        let rc = SSL_write_ex(ssl, base, bytes.count, &written)
        if rc != 1 || written != bytes.count {
            let error = TLSError.fromErrorQueue(.protocolViolation, "TLS write",
                                                extra: ["SSL_get_error \(SSL_get_error(ssl, rc))"])
            throw fail(error)
        }
    }

    /// Starts a clean close: puts close_notify into `output`. During the
    /// handshake there is nothing to notify; the session just ends.
    func close() {
        switch state {
        case .established:
            ERR_clear_error()
            let rc = SSL_shutdown(ssl)
            // 1: the peer's close_notify had already arrived; 0: sent ours, theirs pending.
            state = rc == 1 ? .closed : .closing
            ERR_clear_error()
        case .handshaking:
            state = .closed
        case .closing, .closed, .failed:
            break
        }
    }

    /// Human name of the state for error text.
    var stateName: String {
        switch state {
        case .handshaking: return "handshaking"
        case .established: return "established"
        case .closing: return "closing"
        case .closed: return "closed"
        case .failed: return "failed"
        }
    }

    // MARK: - Steps

    /// One handshake step; nil while it needs more bytes.
    private func stepHandshake() -> Event? {
        ERR_clear_error()
        let rc = SSL_do_handshake(ssl)
        if rc == 1 {
            return established()
        }
        let code = SSL_get_error(ssl, rc)
        if code == SSL_ERROR_WANT_READ {
            return nil
        }
        var extra: [String] = []
        let verify = SSL_get_verify_result(ssl)
        if verify != X509_V_OK {
            extra.append("peer certificate: " + String(cString: X509_verify_cert_error_string(verify)))
        }
        let error = TLSError.fromErrorQueue(.handshake, "TLS handshake failed", extra: extra)
        return .failed(fail(error.withFallback("SSL_get_error \(code)")))
    }

    private func established() -> Event {
        // VERIFY_PEER already failed the handshake otherwise; this is the
        // belt to that brace, since a peer identity we hand up must be verified.
        guard let certificate = SSL_get0_peer_certificate(ssl), SSL_get_verify_result(ssl) == X509_V_OK else {
            return .failed(fail(TLSError(kind: .handshake, operation: "TLS handshake failed",
                                         reasons: ["the peer presented no verified certificate"])))
        }
        let peer = TLSPeerIdentity(certificate: certificate)
        state = .established(peer)
        return .established(peer)
    }

    /// Decrypts records until OpenSSL needs more bytes, gathering plaintext
    /// into the reusable buffer and handing it up when full or at the end.
    private func readRecords(_ handle: (Event) -> Void) {
        var filled = 0
        func deliver() {
            if filled > 0, case .established = state {
                handle(.plaintext(UnsafeRawBufferPointer(start: plaintext, count: filled)))
            }
            filled = 0
        }
        while true {
            switch state {
            case .established, .closing: break
            case .handshaking, .closed, .failed: return
            }
            var n = 0
            ERR_clear_error()
            let rc = SSL_read_ex(ssl, plaintext + filled, Self.plaintextCapacity - filled, &n)
            if rc == 1 {
                filled += n
                if filled == Self.plaintextCapacity { deliver() }
                continue
            }
            let code = SSL_get_error(ssl, rc)
            switch code {
            case SSL_ERROR_WANT_READ:
                deliver()
                return
            case SSL_ERROR_ZERO_RETURN:
                deliver()
                let wasClosing: Bool
                if case .closing = state { wasClosing = true } else { wasClosing = false }
                if !wasClosing {
                    ERR_clear_error()
                    _ = SSL_shutdown(ssl)  // our close_notify in reply
                    ERR_clear_error()
                }
                state = .closed
                handle(.peerClosed)
                return
            default:
                deliver()
                let error = TLSError.fromErrorQueue(.protocolViolation, "TLS receive failed")
                handle(.failed(fail(error.withFallback("SSL_get_error \(code)"))))
                return
            }
        }
    }

    @discardableResult
    private func fail(_ error: TLSError) -> TLSError {
        state = .failed(error)
        return error
    }
}

extension TLSError {
    /// An empty OpenSSL queue still deserves a reason in the log.
    func withFallback(_ reason: String) -> TLSError {
        reasons.isEmpty ? TLSError(kind: kind, operation: operation, reasons: [reason]) : self
    }
}
