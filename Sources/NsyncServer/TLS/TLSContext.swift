import COpenSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One OpenSSL `SSL_CTX` configured for the cluster: TLS 1.3 only, mutual
/// authentication against the cluster CA, this node's certificate and key.
/// Immutable after `init` (OpenSSL makes `SSL_new` on a shared context
/// thread-safe), so any thread may create engines from it; `deinit` frees it.
public final class TLSContext {
    /// Which end of a connection the engines made from this context play.
    public enum Role: Sendable {
        /// Accepts connections; demands a client certificate.
        case server
        /// Dials out; still presents its certificate, and checks the server's.
        case client
    }

    public let role: Role
    /// SHA-256 of the cluster CA certificate's DER: nodes with the same CA
    /// share it, so the Wire Hello can refuse a peer from another cluster.
    public private(set) var clusterID: [UInt8]
    /// Path of the CA file, kept for log lines.
    public let caPath: String
    /// The names in this node's own certificate (nil for a context without
    /// one), so start-up can refuse a --name that peers would refuse.
    public private(set) var ownIdentity: TLSPeerIdentity?
    /// The `SSL_CTX*`; engines hold a reference to this object, not just the pointer.
    let raw: OpaquePointer

    /// Loads the cluster CA, this node's certificate and key, and checks that
    /// they belong together. Throws a `.configuration` error whose description
    /// is a one-line reason (missing or unreadable file, key not matching the
    /// certificate, certificate not signed by the CA or expired).
    public convenience init(role: Role, caPath: String, certificatePath: String, keyPath: String) throws {
        try self.init(role: role, caPath: caPath, certificatePath: Optional(certificatePath),
                      keyPath: Optional(keyPath), checksOwnCertificate: true)
    }

    /// Tests reach the refusal paths through this: a context without a
    /// certificate, or with one the CA did not sign or that has expired, is
    /// what an intruder would bring; the daemon always uses the public init.
    init(role: Role, caPath: String, certificatePath: String?, keyPath: String?,
         checksOwnCertificate: Bool) throws {
        self.role = role
        self.caPath = caPath
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(role == .server ? TLS_server_method() : TLS_client_method()) else {
            throw TLSError.fromErrorQueue(.configuration, "creating the TLS context")
        }
        // From here on, `deinit` frees `ctx` if a later step throws: assign
        // every stored property first.
        raw = ctx
        clusterID = []

        try configureProtocol(ctx)
        let ca = try Self.loadCA(ctx: ctx, role: role, path: caPath)
        defer { X509_free(ca) }
        clusterID = try Self.sha256(of: ca, path: caPath)

        switch (certificatePath, keyPath) {
        case let (certificatePath?, keyPath?):
            try loadIdentity(ctx, certificatePath: certificatePath, keyPath: keyPath)
            if checksOwnCertificate {
                try Self.checkSignedByCA(ctx: ctx, role: role, certificatePath: certificatePath, caPath: caPath)
            }
        case (nil, nil):
            precondition(!checksOwnCertificate, "a node always presents a certificate")
        default:
            throw TLSError(kind: .configuration,
                           operation: "a certificate and its key go together: got only one of them")
        }
    }

    deinit {
        SSL_CTX_free(raw)
    }

    private func configureProtocol(_ ctx: OpaquePointer) throws {
        ERR_clear_error()
        guard nsync_SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1,
              nsync_SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1 else {
            throw TLSError.fromErrorQueue(.configuration, "restricting TLS to version 1.3")
        }
        // AES-128-GCM first: it is the fastest suite on AES-NI hardware
        // (DESIGN.md measures it), and the server's order decides.
        guard SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256") == 1 else {
            throw TLSError.fromErrorQueue(.configuration, "setting the TLS 1.3 cipher suites")
        }
        _ = SSL_CTX_set_options(ctx, nsync_SSL_OP_CIPHER_SERVER_PREFERENCE() | nsync_SSL_OP_NO_TICKET()
                                | nsync_SSL_OP_NO_COMPRESSION() | nsync_SSL_OP_NO_RENEGOTIATION())
        // Peers keep long-lived connections and never resume: no tickets
        // means no post-handshake NewSessionTicket writes and no session cache.
        _ = SSL_CTX_set_num_tickets(ctx, 0)
        _ = nsync_SSL_CTX_set_session_cache_mode(ctx, 0 /* SSL_SESS_CACHE_OFF */)
        // Our BIO never refuses a write, so SSL_write always completes whole;
        // moving-buffer is set anyway so a retried write may come from a new address.
        _ = nsync_SSL_CTX_set_mode(ctx, Int(SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER))
        // Read ahead lets OpenSSL take several records per BIO read instead of
        // a 5-byte header and a body: fewer callbacks into our BIO.
        _ = nsync_SSL_CTX_set_read_ahead(ctx, 1)
        // Both ends verify: the server refuses a client without a certificate.
        let mode = SSL_VERIFY_PEER | (role == .server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0)
        SSL_CTX_set_verify(ctx, mode, nil)
    }

    /// Trusts exactly the cluster CA and returns its certificate (caller frees).
    private static func loadCA(ctx: OpaquePointer, role: Role, path: String) throws -> OpaquePointer {
        let operation = "loading cluster CA certificate \(path) (--ca)"
        try checkReadable(path, operation)
        ERR_clear_error()
        guard let bio = BIO_new_file(path, "r") else {
            throw TLSError.fromErrorQueue(.configuration, operation)
        }
        defer { BIO_free(bio) }
        guard let ca = PEM_read_bio_X509(bio, nil, nil, nil) else {
            throw TLSError.fromErrorQueue(.configuration, operation, extra: ["no PEM certificate in the file", notPEMHint])
        }
        ERR_clear_error()
        guard SSL_CTX_load_verify_locations(ctx, path, nil) == 1 else {
            X509_free(ca)
            throw TLSError.fromErrorQueue(.configuration, operation)
        }
        if role == .server {
            // Tells clients which CA to pick a certificate for; informational.
            if let names = SSL_load_client_CA_file(path) {
                SSL_CTX_set_client_CA_list(ctx, names)
            }
        }
        return ca
    }

    private func loadIdentity(_ ctx: OpaquePointer, certificatePath: String, keyPath: String) throws {
        let certOperation = "loading certificate \(certificatePath) (--cert)"
        try Self.checkReadable(certificatePath, certOperation)
        ERR_clear_error()
        guard SSL_CTX_use_certificate_chain_file(ctx, certificatePath) == 1 else {
            throw TLSError.fromErrorQueue(.configuration, certOperation, extra: [Self.notPEMHint])
        }
        if let own = SSL_CTX_get0_certificate(ctx) { ownIdentity = TLSPeerIdentity(certificate: own) }
        let keyOperation = "loading private key \(keyPath) (--key)"
        try Self.checkReadable(keyPath, keyOperation)
        ERR_clear_error()
        let mismatch = "private key \(keyPath) does not belong to certificate \(certificatePath)"
        let mismatchHint = "give the key made together with this certificate (certs/gen-certs.sh writes NAME.pem and NAME.key)"
        guard SSL_CTX_use_PrivateKey_file(ctx, keyPath, SSL_FILETYPE_PEM) == 1 else {
            var error = TLSError.fromErrorQueue(.configuration, keyOperation)
            // OpenSSL checks the pair here already; its "key values mismatch" names neither file.
            if error.reasons.contains(where: { $0.contains("key values mismatch") }) {
                error.operation = mismatch
                error.reasons.append(mismatchHint)
            } else {
                error.reasons.append(Self.notPEMHint)
            }
            throw error
        }
        ERR_clear_error()
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            throw TLSError.fromErrorQueue(.configuration, mismatch, extra: [mismatchHint])
        }
    }

    /// Start-up errors end with what to do: a file that is not PEM is
    /// usually the wrong file given to the flag.
    private static let notPEMHint = "give the PEM file certs/gen-certs.sh wrote for this flag"

    /// Verifies our own certificate as a peer would, so a node whose
    /// certificate the others would refuse fails at start-up instead.
    private static func checkSignedByCA(ctx: OpaquePointer, role: Role, certificatePath: String, caPath: String) throws {
        ERR_clear_error()
        guard let cert = SSL_CTX_get0_certificate(ctx), let store = SSL_CTX_get_cert_store(ctx),
              let storeContext = X509_STORE_CTX_new() else {
            throw TLSError.fromErrorQueue(.configuration, "checking certificate \(certificatePath)")
        }
        defer { X509_STORE_CTX_free(storeContext) }
        // No untrusted chain: gen-certs.sh signs node certificates directly with the CA.
        guard X509_STORE_CTX_init(storeContext, store, cert, nil) == 1 else {
            throw TLSError.fromErrorQueue(.configuration, "checking certificate \(certificatePath)")
        }
        _ = X509_STORE_CTX_set_purpose(storeContext, role == .server ? X509_PURPOSE_SSL_SERVER : X509_PURPOSE_SSL_CLIENT)
        if X509_verify_cert(storeContext) != 1 {
            let code = X509_STORE_CTX_get_error(storeContext)
            let reason = String(cString: X509_verify_cert_error_string(Int(code)))
            ERR_clear_error()
            throw TLSError(kind: .configuration,
                           operation: "certificate \(certificatePath) is not valid under the cluster CA \(caPath)",
                           reasons: [reason + " (regenerate it with certs/gen-certs.sh --out DIR NAME using the same CA)"])
        }
    }

    private static func sha256(of certificate: OpaquePointer, path: String) throws -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        ERR_clear_error()
        let ok = digest.withUnsafeMutableBufferPointer { X509_digest(certificate, EVP_sha256(), $0.baseAddress, &length) }
        guard ok == 1 else {
            throw TLSError.fromErrorQueue(.configuration, "hashing cluster CA certificate \(path)")
        }
        return Array(digest.prefix(Int(length)))
    }

    /// OpenSSL's "no such file" text names neither the file nor the flag;
    /// say which file is missing or unreadable before handing it over.
    private static func checkReadable(_ path: String, _ operation: String) throws {
        if access(path, R_OK) != 0 {
            let reason = String(cString: strerror(errno))
            throw TLSError(kind: .configuration, operation: operation,
                           reasons: [reason + " (check the path, and that the user running nsyncd may read it)"])
        }
    }
}
