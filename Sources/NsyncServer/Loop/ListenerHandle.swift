import CLibUV

/// The listening half shared by `TCPListener` and `UnixListener`: accepts
/// each pending connection into a fresh stream and hands it over. Loop thread only.
public class ListenerHandle: Handle {
    /// Called when a pending connection could not be accepted (e.g. EMFILE:
    /// out of file descriptors); the listener keeps listening.
    public var onAcceptError: ((UVError) -> Void)?
    private var connectionArrived: ((Int32) -> Void)?

    func startListening<S: StreamHandle>(backlog: Int32, target: String?,
                                         makeStream: @escaping () -> S,
                                         onConnection: @escaping (S) -> Void) throws {
        guard !isClosing else { throw UVError.canceled("listen", target) }
        // Stored in self and dropped at close, so `unowned` is always valid when called.
        connectionArrived = { [unowned self] status in
            guard status == 0 else {
                onAcceptError?(UVError(code: status, operation: "accept", target: target))
                return
            }
            let stream = makeStream()
            do {
                try stream.accept(from: self)
            } catch {
                stream.close()
                onAcceptError?(error as! UVError)
                return
            }
            onConnection(stream)
        }
        let stream = memory.assumingMemoryBound(to: uv_stream_t.self)
        try uvCheck(uv_listen(stream, backlog) { server, status in
            Handle.owner(of: server, as: ListenerHandle.self)?.connectionArrived?(status)
        }, "listen", target: target)
    }

    override func didClose() {
        connectionArrived = nil
        onAcceptError = nil
        super.didClose()
    }
}
