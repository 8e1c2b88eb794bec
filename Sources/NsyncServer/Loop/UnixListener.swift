import CLibUV

/// A listening Unix-domain socket (`uv_pipe_t`) that hands each accepted
/// connection over as a `UnixStream`. libuv removes the socket file when the
/// listener closes. Loop thread only.
public final class UnixListener: ListenerHandle {
    public private(set) var path: String?

    public init(loop: EventLoop) {
        // uv_pipe_init cannot fail.
        try! super.init(loop: loop, type: UV_NAMED_PIPE) { uv_pipe_init(loop.pointer, $0.assumingMemoryBound(to: uv_pipe_t.self), 0) }
    }

    /// Binds to `path`. An existing file there (a live daemon, or a stale
    /// socket from a crash) throws `isAddressInUse`: the caller decides
    /// whether it is stale and removes it.
    public func bind(path: String) throws {
        if let error = UnixListener.checkLength(path, "bind") { throw error }
        try uvCheck(uv_pipe_bind(memory.assumingMemoryBound(to: uv_pipe_t.self), path), "bind", target: path)
        self.path = path
    }

    /// Starts accepting; `onConnection` receives each connection, open and
    /// not yet reading. Accept failures go to `onAcceptError`.
    public func listen(backlog: Int32 = 128, onConnection: @escaping (UnixStream) -> Void) throws {
        let loop = self.loop
        let path = self.path
        try startListening(backlog: backlog, target: path, makeStream: { UnixStream(loop: loop) }) { stream in
            stream.path = path
            onConnection(stream)
        }
    }

    /// sockaddr_un holds 108 bytes with the NUL; libuv would truncate a longer
    /// path silently and bind somewhere else.
    static func checkLength(_ path: String, _ operation: String) -> UVError? {
        path.utf8.count < 108 ? nil : UVError(code: UV_ENAMETOOLONG.rawValue, operation: operation, target: path)
    }
}
