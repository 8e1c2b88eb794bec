import CLibUV

/// A Unix-domain socket connection (`uv_pipe_t`), e.g. to the control
/// socket `nsyncd status` talks to. Reading, writing and closing are
/// `StreamHandle`'s. Loop thread only.
public final class UnixStream: StreamHandle {
    /// The socket path (connected to, or listened on for accepted streams).
    public internal(set) var path: String?

    public init(loop: EventLoop) {
        // uv_pipe_init cannot fail.
        try! super.init(loop: loop, type: UV_NAMED_PIPE) { uv_pipe_init(loop.pointer, $0.assumingMemoryBound(to: uv_pipe_t.self), 0) }
    }

    override var errorTarget: String? { path }

    /// Connects to the socket at `path`; `completion` runs once on the loop
    /// thread (never inside this call), nil when connected (`isNotFound` / `isConnectionRefused` when
    /// no daemon listens there).
    public func connect(path: String, completion: @escaping (UVError?) -> Void) {
        self.path = path
        let request = StreamRequest(type: UV_CONNECT) { status in
            completion(status < 0 ? UVError(code: status, operation: "connect", target: path) : nil)
        }
        if let error = UnixListener.checkLength(path, "connect") ?? (isClosing ? .canceled("connect", path) : nil) {
            return request.failLater(error.code, on: loop)
        }
        uv_pipe_connect(request.pointer(as: uv_connect_t.self), memory.assumingMemoryBound(to: uv_pipe_t.self), path) { req, status in
            StreamRequest.complete(req, status: status)
        }
    }
}
