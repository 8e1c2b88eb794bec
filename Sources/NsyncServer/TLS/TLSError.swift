import COpenSSL

/// A TLS failure with OpenSSL's error-queue text, so the log says both what we
/// were doing and why OpenSSL refused. Built by `TLSError.fromErrorQueue`; any thread.
public struct TLSError: Error, Equatable, CustomStringConvertible, Sendable {
    /// What part of the TLS life cycle failed: operators act differently on each.
    public enum Kind: Equatable, Sendable {
        /// Loading the CA, certificate or key at start-up: fix the files or flags.
        case configuration
        /// The handshake failed: peer not trusted, no certificate, expired, or not TLS.
        case handshake
        /// The handshake did not finish in time.
        case handshakeTimeout
        /// An established connection received something OpenSSL rejected (an alert, a bad record).
        case protocolViolation
        /// The peer closed TCP without a TLS close_notify: data may have been cut short.
        case truncated
        /// A call made in the wrong state (a bug in the caller, not the network).
        case misuse
    }

    public var kind: Kind
    /// What we were doing, e.g. "loading certificate /etc/nsyncd/node1.pem".
    public var operation: String
    /// OpenSSL's reasons, oldest first, e.g. ["certificate verify failed (SSL routines)"].
    public var reasons: [String]

    public init(kind: Kind, operation: String, reasons: [String] = []) {
        self.kind = kind
        self.operation = operation
        self.reasons = reasons
    }

    public var description: String {
        reasons.isEmpty ? operation : "\(operation): \(reasons.joined(separator: "; "))"
    }

    /// Drains OpenSSL's thread-local error queue into a `TLSError`; `extra`
    /// reasons (a verify result, a socket error) come after OpenSSL's own.
    /// The queue must have been cleared (`ERR_clear_error`) before the failing
    /// call, otherwise stale reasons from an unrelated earlier call leak in.
    static func fromErrorQueue(_ kind: Kind, _ operation: String, extra: [String] = []) -> TLSError {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            // Reason and library text rather than ERR_error_string's
            // "error:0A000086:SSL routines::..." which operators cannot read.
            let reason = ERR_reason_error_string(code).map { String(cString: $0) } ?? "error \(code)"
            if let library = ERR_lib_error_string(code).map({ String(cString: $0) }) {
                reasons.append("\(reason) (\(library))")
            } else {
                reasons.append(reason)
            }
        }
        reasons.append(contentsOf: extra)
        return TLSError(kind: kind, operation: operation, reasons: reasons)
    }
}
