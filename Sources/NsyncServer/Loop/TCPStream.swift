import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// A TCP connection (`uv_tcp_t`), made by `connect` or handed over by a
/// `TCPListener`. Reading, writing and closing are `StreamHandle`'s. Loop thread only.
public final class TCPStream: StreamHandle {
    /// "10.0.0.2:7000" once connected (or accepted); kept after close for logs.
    public private(set) var peerAddress: String?
    private var connectTarget: String?

    public init(loop: EventLoop) {
        // uv_tcp_init creates no socket yet, so it cannot fail.
        try! super.init(loop: loop, type: UV_TCP) { uv_tcp_init(loop.pointer, $0.assumingMemoryBound(to: uv_tcp_t.self)) }
    }

    private var tcp: UnsafeMutablePointer<uv_tcp_t> { memory.assumingMemoryBound(to: uv_tcp_t.self) }

    override var errorTarget: String? { peerAddress ?? connectTarget }

    /// Connects to `host` (numeric IPv4/IPv6, "localhost" = 127.0.0.1, or a
    /// name looked up on the thread pool) and `port`. `completion` runs once,
    /// on the loop thread and never inside this call: nil when connected
    /// (start reading and writing from there), else the error
    /// (`isConnectionRefused` when nothing listens; canceled if the stream
    /// was closed first — close it from a timer to bound the wait).
    public func connect(host: String, port: Int, completion: @escaping (UVError?) -> Void) {
        let target = "\(host):\(port)"
        connectTarget = target
        if let address = SocketAddress(numericHost: host, port: port) {
            return connect(to: address, target: target, completion: completion)
        }
        SocketAddress.resolve(host: host, port: port, on: loop) { result in
            switch result {
            case .failure(let error):
                completion(UVError(code: error.code, operation: "connect", target: target))
            case .success(let address):
                self.connect(to: address, target: target, completion: completion)
            }
        }
    }

    private func connect(to address: SocketAddress, target: String, completion: @escaping (UVError?) -> Void) {
        let request = StreamRequest(type: UV_CONNECT) { status in
            if status < 0 { return completion(UVError(code: status, operation: "connect", target: target)) }
            self.didConnect()
            completion(nil)
        }
        let rc = isClosing ? UV_ECANCELED.rawValue : address.withSockAddr { sockaddr in
            uv_tcp_connect(request.pointer(as: uv_connect_t.self), tcp, sockaddr) { req, status in
                StreamRequest.complete(req, status: status)
            }
        }
        if rc < 0 { request.failLater(rc, on: loop) }
    }

    func didConnect() {
        peerAddress = SocketAddress { uv_tcp_getpeername(tcp, $0, $1) }?.description
    }

    /// This end's address, e.g. "127.0.0.1:53122"; nil when not connected.
    public var localAddress: String? {
        guard !isClosing else { return nil }
        return SocketAddress { uv_tcp_getsockname(tcp, $0, $1) }?.description
    }

    /// Disables Nagle's algorithm, so small frames (Raft heartbeats) leave at once.
    public func setNoDelay(_ enabled: Bool) throws {
        try uvCheck(uv_tcp_nodelay(tcp, enabled ? 1 : 0), "setNoDelay", target: errorTarget)
    }

    /// Enables TCP keep-alive probes after `delay` idle seconds, so a peer
    /// that vanished without a FIN is eventually noticed.
    public func setKeepAlive(_ enabled: Bool, delay: UInt32 = 60) throws {
        try uvCheck(uv_tcp_keepalive(tcp, enabled ? 1 : 0, delay), "setKeepAlive", target: errorTarget)
    }
}
