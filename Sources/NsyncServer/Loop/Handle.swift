import CLibUV

/// The base of every libuv handle wrapper: owns the handle's memory and its
/// one close. Loop thread only.
///
/// Lifetime: an open handle keeps itself alive (its `data` pointer holds a
/// retain), so dropping the last reference does not leak a live socket — call
/// `close()`, or `EventLoop.close()` closes it. The retain is released in the
/// close callback, which libuv runs after every request callback of the
/// handle; the callbacks the handle stored are dropped then too, so they may
/// capture the handle strongly without a retain cycle.
public class Handle {
    /// The loop this handle belongs to (kept alive by it).
    public let loop: EventLoop
    let memory: UnsafeMutableRawPointer
    private var closeCompletions: [() -> Void] = []

    /// True from `close()` on.
    public private(set) var isClosing = false
    /// True once the close callback ran: the handle is gone from the loop.
    public private(set) var isClosed = false

    /// Allocates and initialises a handle of `type` with `initialize`
    /// (`uv_tcp_init` and friends), or throws what it returned.
    init(loop: EventLoop, type: uv_handle_type, _ initialize: (UnsafeMutableRawPointer) -> Int32) throws {
        assert(loop.isOnLoopThread, "libuv handles are confined to their loop's thread")
        let memory = UnsafeMutableRawPointer.allocate(byteCount: uv_handle_size(type), alignment: 16)
        let rc = initialize(memory)
        guard rc == 0 else {
            memory.deallocate()
            throw UVError(code: rc, operation: "uv_\(String(cString: uv_handle_type_name(type)))_init")
        }
        self.loop = loop
        self.memory = memory
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
        loop.liveHandleCount += 1
    }

    deinit {
        // Reached only after the close callback released the self-retain.
        memory.deallocate()
    }

    var handle: UnsafeMutablePointer<uv_handle_t> { memory.assumingMemoryBound(to: uv_handle_t.self) }

    /// The Swift owner of a handle, from its `data` pointer (nil once closed).
    static func owner<T: Handle>(of handle: UnsafeMutableRawPointer?, as type: T.Type) -> T? {
        guard let data = handle?.assumingMemoryBound(to: uv_handle_t.self).pointee.data else { return nil }
        return Unmanaged<T>.fromOpaque(data).takeUnretainedValue()
    }

    /// Stops the handle and closes it; pending requests complete with a
    /// canceled error first, then `completion` (if any) runs once the handle is
    /// released — immediately if it already was. Idempotent.
    public func close(_ completion: (() -> Void)? = nil) {
        if let completion {
            if isClosed { completion() } else { closeCompletions.append(completion) }
        }
        guard !isClosing else { return }
        isClosing = true
        uv_close(handle) { handle in
            guard let handle, let data = handle.pointee.data else { return }
            handle.pointee.data = nil
            Unmanaged<Handle>.fromOpaque(data).takeRetainedValue().finishClose()
        }
    }

    private func finishClose() {
        isClosed = true
        loop.liveHandleCount -= 1
        didClose()
        let completions = closeCompletions
        closeCompletions = []
        for completion in completions { completion() }
    }

    /// Subclasses drop their stored callbacks here (calling super), which
    /// breaks any cycle through a callback that captured the handle.
    func didClose() {}
}
