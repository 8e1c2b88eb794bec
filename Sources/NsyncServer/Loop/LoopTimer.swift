import CLibUV

/// A libuv timer (`uv_timer_t`) with one callback. Loop thread only.
/// Named LoopTimer so it never clashes with Foundation's Timer.
public final class LoopTimer: Handle {
    private var callback: (() -> Void)?

    public init(loop: EventLoop) {
        // uv_timer_init cannot fail.
        try! super.init(loop: loop, type: UV_TIMER) { uv_timer_init(loop.pointer, $0.assumingMemoryBound(to: uv_timer_t.self)) }
    }

    private var timer: UnsafeMutablePointer<uv_timer_t> { memory.assumingMemoryBound(to: uv_timer_t.self) }

    /// Calls `callback` after `delay` ms, then every `repeating` ms if that is
    /// non-zero, until `stop()` or `close()`. Restarting replaces the callback.
    /// Timers due in the same iteration fire in order of due time, then of start.
    public func start(after delay: UInt64, repeating: UInt64 = 0, _ callback: @escaping () -> Void) {
        guard !isClosing else { return assertionFailure("LoopTimer.start after close") }
        self.callback = callback
        uv_timer_start(timer, { timer in
            Handle.owner(of: timer, as: LoopTimer.self)?.callback?()
        }, delay, repeating)
    }

    /// Stops the timer; it can be started again.
    public func stop() {
        guard !isClosing else { return }
        uv_timer_stop(timer)
    }

    /// True while started and not yet fired (or repeating).
    public var isActive: Bool { !isClosing && uv_is_active(handle) != 0 }

    override func didClose() {
        callback = nil
        super.didClose()
    }
}

extension EventLoop {
    /// Calls `callback` once after `delay` ms on a timer that closes itself
    /// after firing; close the returned timer to cancel. Loop thread.
    @discardableResult
    public func schedule(after delay: UInt64, _ callback: @escaping () -> Void) -> LoopTimer {
        let timer = LoopTimer(loop: self)
        timer.start(after: delay) { [unowned timer] in
            timer.close()
            callback()
        }
        return timer
    }

    /// Calls `callback` on a later turn of the loop, after that turn's I/O
    /// and due timers: for long work done a slice per turn. Not
    /// `schedule(after: 0)`: libuv (1.44) runs a 0 ms timer started by a
    /// timer callback in the same pass, before any I/O, so a slice that
    /// schedules the next that way runs them all back to back and no
    /// heartbeat goes out meanwhile. Close the returned timer to cancel.
    @discardableResult
    public func nextTurn(_ callback: @escaping () -> Void) -> LoopTimer {
        schedule(after: 1, callback)
    }
}
