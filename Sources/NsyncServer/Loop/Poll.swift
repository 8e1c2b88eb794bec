import CLibUV

/// Readiness of a raw file descriptor, as `Poll` reports it.
public struct PollEvents: OptionSet, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let readable = PollEvents(rawValue: Int32(UV_READABLE.rawValue))
    public static let writable = PollEvents(rawValue: Int32(UV_WRITABLE.rawValue))
    public static let disconnect = PollEvents(rawValue: Int32(UV_DISCONNECT.rawValue))
    public static let prioritized = PollEvents(rawValue: Int32(UV_PRIORITIZED.rawValue))
}

/// Watches a raw file descriptor it does not own (`uv_poll_t`) — e.g. an
/// inotify descriptor — and calls back when it is ready; the caller does the
/// non-blocking read and closes the descriptor after closing the Poll.
/// Loop thread only.
public final class Poll: Handle {
    private var callback: ((Result<PollEvents, UVError>) -> Void)?
    public let fd: Int32

    /// Fails for descriptors epoll cannot watch (regular files: EPERM).
    public init(loop: EventLoop, fd: Int32) throws {
        self.fd = fd
        try super.init(loop: loop, type: UV_POLL) { uv_poll_init(loop.pointer, $0.assumingMemoryBound(to: uv_poll_t.self), fd) }
    }

    private var poll: UnsafeMutablePointer<uv_poll_t> { memory.assumingMemoryBound(to: uv_poll_t.self) }

    /// Calls `callback` each loop iteration while the descriptor is ready for
    /// `events` (level-triggered: read until EAGAIN or it fires again), or
    /// with an error (then stop or close). Restarting replaces the callback.
    public func start(_ events: PollEvents = .readable, _ callback: @escaping (Result<PollEvents, UVError>) -> Void) throws {
        guard !isClosing else { throw UVError.canceled("poll", "fd \(fd)") }
        self.callback = callback
        try uvCheck(uv_poll_start(poll, events.rawValue) { poll, status, events in
            guard let owner = Handle.owner(of: poll, as: Poll.self) else { return }
            owner.callback?(status < 0
                ? .failure(UVError(code: status, operation: "poll", target: "fd \(owner.fd)"))
                : .success(PollEvents(rawValue: events)))
        }, "poll", target: "fd \(fd)")
    }

    public func stop() {
        guard !isClosing else { return }
        uv_poll_stop(poll)
    }

    override func didClose() {
        callback = nil
        super.didClose()
    }
}
