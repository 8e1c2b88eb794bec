import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket (`uv_tcp_t`) that hands each accepted connection
/// over as a `TCPStream`. Loop thread only.
public final class TCPListener: ListenerHandle {
    private var boundTo: String?

    public init(loop: EventLoop) {
        // uv_tcp_init creates no socket yet, so it cannot fail.
        try! super.init(loop: loop, type: UV_TCP) { uv_tcp_init(loop.pointer, $0.assumingMemoryBound(to: uv_tcp_t.self)) }
    }

    private var tcp: UnsafeMutablePointer<uv_tcp_t> { memory.assumingMemoryBound(to: uv_tcp_t.self) }

    /// Binds to `host` (numeric IPv4/IPv6, "localhost", "0.0.0.0", "::", or a
    /// name resolved now, blocking) and `port` (0 picks a free port: read
    /// `localPort`). A port already taken throws an error whose
    /// `isAddressInUse` is true.
    public func bind(host: String, port: Int) throws {
        let target = "\(host):\(port)"
        let address = try SocketAddress.resolveNow(host: host, port: port, on: loop, operation: "bind")
        _ = try address.withSockAddr { try uvCheck(uv_tcp_bind(tcp, $0, 0), "bind", target: target) }
        // On Unix libuv defers EADDRINUSE from bind to listen; report it here,
        // where the operator's configured address is named.
        try uvCheck(tcp.pointee.delayed_error, "bind", target: target)
        boundTo = target
    }

    /// Starts accepting; `onConnection` receives each connection, open and
    /// not yet reading. Accept failures go to `onAcceptError`.
    public func listen(backlog: Int32 = 511, onConnection: @escaping (TCPStream) -> Void) throws {
        let loop = self.loop
        try startListening(backlog: backlog, target: boundTo, makeStream: { TCPStream(loop: loop) }) { stream in
            stream.didConnect()
            onConnection(stream)
        }
    }

    /// The bound port (the chosen one after binding port 0); nil before bind.
    public var localPort: Int? {
        guard !isClosing else { return nil }
        return SocketAddress { uv_tcp_getsockname(tcp, $0, $1) }?.port
    }
}
