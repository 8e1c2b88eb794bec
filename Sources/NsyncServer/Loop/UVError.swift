import CLibUV

/// A libuv error code with the operation (and address or path) it concerns,
/// so a log line says what failed where ("connect 10.0.0.2:7000: connection
/// refused (ECONNREFUSED)"). A plain value: any thread.
public struct UVError: Error, Equatable, CustomStringConvertible, Sendable {
    /// libuv's negative error code (`UV_E*`, i.e. `-errno` on Unix).
    public var code: Int32
    /// What we were doing: "connect", "bind", "open", "read"...
    public var operation: String
    /// The address or path the operation concerned, when there is one.
    public var target: String?

    public init(code: Int32, operation: String, target: String? = nil) {
        self.code = code
        self.operation = operation
        self.target = target
    }

    /// libuv's symbolic name, e.g. "EADDRINUSE".
    public var name: String { String(cString: uv_err_name(code)) }

    /// Human text, e.g. "address already in use".
    public var reason: String { String(cString: uv_strerror(code)) }

    public var description: String {
        if let target { return "\(operation) \(target): \(reason) (\(name))" }
        return "\(operation): \(reason) (\(name))"
    }

    /// Another process (or another nsyncd) already listens on that address or socket path.
    public var isAddressInUse: Bool { code == UV_EADDRINUSE.rawValue }
    /// Nothing listens at the peer's address (it is down or not yet started).
    public var isConnectionRefused: Bool { code == UV_ECONNREFUSED.rawValue }
    /// The handle was closed before the request finished; not a failure of the peer.
    public var isCanceled: Bool { code == UV_ECANCELED.rawValue }
    /// The disk (or quota) is full.
    public var isNoSpace: Bool { code == UV_ENOSPC.rawValue || code == -EDQUOT }
    public var isNotFound: Bool { code == UV_ENOENT.rawValue }
    /// The peer went away mid-stream (reset or broken pipe).
    public var isConnectionReset: Bool { code == UV_ECONNRESET.rawValue || code == UV_EPIPE.rawValue }

    static func canceled(_ operation: String, _ target: String? = nil) -> UVError {
        UVError(code: UV_ECANCELED.rawValue, operation: operation, target: target)
    }
}

/// Turns a libuv return code into a throw: negative is an error, anything
/// else is returned (some calls return a count).
@inline(__always) @discardableResult
func uvCheck(_ code: Int32, _ operation: @autoclosure () -> String, target: @autoclosure () -> String? = nil) throws -> Int32 {
    if code < 0 { throw UVError(code: code, operation: operation(), target: target()) }
    return code
}
