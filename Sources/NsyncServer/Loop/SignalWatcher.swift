import CLibUV

/// Turns a Unix signal (SIGINT, SIGTERM, SIGHUP...) into a callback on the
/// loop thread (`uv_signal_t`), where it is safe to start a graceful
/// shutdown. While started, the signal's default action (e.g. terminating)
/// is replaced. Loop thread only.
public final class SignalWatcher: Handle {
    private var callback: ((Int32) -> Void)?

    /// Fails only when libuv cannot create its signal pipe (out of descriptors).
    public init(loop: EventLoop) throws {
        try super.init(loop: loop, type: UV_SIGNAL) { uv_signal_init(loop.pointer, $0.assumingMemoryBound(to: uv_signal_t.self)) }
    }

    /// Calls `callback(signal)` each time `signal` arrives; restarting
    /// replaces the signal and callback.
    public func start(signal: Int32, _ callback: @escaping (Int32) -> Void) throws {
        guard !isClosing else { throw UVError.canceled("signal") }
        self.callback = callback
        try uvCheck(uv_signal_start(memory.assumingMemoryBound(to: uv_signal_t.self), { signal, number in
            Handle.owner(of: signal, as: SignalWatcher.self)?.callback?(number)
        }, signal), "signal", target: "\(signal)")
    }

    /// Restores the signal's previous disposition.
    public func stop() {
        guard !isClosing else { return }
        uv_signal_stop(memory.assumingMemoryBound(to: uv_signal_t.self))
    }

    override func didClose() {
        callback = nil
        super.didClose()
    }
}
