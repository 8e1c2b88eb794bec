import COpenSSL

/// What the engine's BIO reads from and writes to: the network bytes of the
/// current `receive` call, and the engine's `TLSOutput`. A plain struct the C
/// callbacks reach through `BIO_get_data` without reference counting.
/// Owned (allocated and freed) by one `TLSEngine`; loop thread.
struct TLSBIOState {
    /// Network bytes not yet consumed by OpenSSL; nil outside `receive`.
    var source: UnsafeRawPointer?
    var sourceCount: Int
    /// Unretained: the engine keeps the output alive longer than the BIO.
    var output: Unmanaged<TLSOutput>
}

/// The custom BIO between OpenSSL and a `TLSEngine`, instead of a pair of
/// memory BIOs: reads consume straight from the caller's receive buffer (no
/// BIO_write copy), writes append straight into pooled output blocks (no
/// BIO_read copy, no malloc per flush). It never buffers, so nothing is left
/// behind to drain after an SSL call. The method table is process-wide and
/// immutable; each BIO is used by one engine's thread.
enum TLSEngineBIO {
    static let method: OpaquePointer = {
        guard let method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "nsyncd TLS engine") else {
            fatalError("BIO_meth_new failed: out of memory")
        }
        _ = BIO_meth_set_create(method) { bio in
            BIO_set_init(bio, 1)
            return 1
        }
        _ = BIO_meth_set_read(method) { bio, out, length in
            guard let bio, let out, length > 0, let data = BIO_get_data(bio) else { return 0 }
            let state = data.assumingMemoryBound(to: TLSBIOState.self)
            nsync_BIO_clear_retry_flags(bio)
            let available = state.pointee.sourceCount
            guard available > 0, let source = state.pointee.source else {
                // Not EOF: the next `receive` brings more. OpenSSL reports WANT_READ.
                nsync_BIO_set_retry_read(bio)
                return -1
            }
            let n = min(Int(length), available)
            UnsafeMutableRawPointer(out).copyMemory(from: source, byteCount: n)
            state.pointee.source = source + n
            state.pointee.sourceCount = available - n
            return Int32(n)
        }
        _ = BIO_meth_set_write(method) { bio, bytes, length in
            guard let bio, let bytes, length > 0, let data = BIO_get_data(bio) else { return 0 }
            let state = data.assumingMemoryBound(to: TLSBIOState.self)
            nsync_BIO_clear_retry_flags(bio)
            state.pointee.output._withUnsafeGuaranteedRef { $0.append(bytes, count: Int(length)) }
            return length
        }
        _ = BIO_meth_set_ctrl(method) { _, command, _, _ in
            // OpenSSL's state machine treats a failed flush as a fatal error;
            // there is nothing to flush, so say it worked. Other controls
            // (pending, eof, kTLS queries) are "not supported": 0.
            command == BIO_CTRL_FLUSH ? 1 : 0
        }
        return method
    }()

    /// A new BIO over `state`; `SSL_set_bio` takes ownership of it.
    static func make(state: UnsafeMutablePointer<TLSBIOState>) -> OpaquePointer? {
        guard let bio = BIO_new(method) else { return nil }
        BIO_set_data(bio, state)
        return bio
    }
}
