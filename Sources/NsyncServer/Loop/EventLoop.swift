import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// One libuv loop (never the default loop: tests and benchmarks run several,
/// each on its own thread) and the thread that runs it.
///
/// Confined to the loop thread — the thread that calls `run()` (before the
/// first `run()`, the thread that created it) — except `execute(_:)`, the one
/// entry that is safe from any thread. Handles keep their loop alive; the loop
/// does not keep handles alive (an open handle keeps itself alive until its
/// close callback), so a loop with open handles lives until `close()`.
///
/// Every libuv handle on this loop must be one of the `Handle` wrappers:
/// `close()` finds the open ones through libuv and closes them through their
/// Swift owner.
public final class EventLoop {
    /// Bytes of the read buffer all streams of this loop share: a read is
    /// handed to its callback as a view into it and the next read overwrites
    /// it, so there is no allocation per read and no per-connection buffer.
    public static let readBufferSize = 256 * 1024

    let pointer: UnsafeMutablePointer<uv_loop_t>
    /// Wakes the loop for `execute`; closed (and unreachable) once `close()` starts.
    private let wakeup: UnsafeMutablePointer<uv_async_t>
    /// Bounds `run(until:timeout:)`; not a `LoopTimer` so it never counts as a live handle.
    private let deadlineTimer: UnsafeMutablePointer<uv_timer_t>
    let readBuffer: UnsafeMutableRawBufferPointer

    private let lock = Lock()
    private var queued: [() -> Void] = []   // guarded by lock
    private var spare: [() -> Void] = []    // loop thread: the drained half of the double buffer
    private var acceptsWork = true          // guarded by lock
    private var thread: pthread_t           // guarded by lock

    private enum State { case open, closing, closed }
    private var state = State.open
    private var isRunning = false

    /// Open handles (timers, streams, listeners, ...) not yet released by their
    /// close callback: a leak test's measure.
    public internal(set) var liveHandleCount = 0

    private static let ignoreBrokenPipe: Void = {
        // A write to a peer that has gone raises SIGPIPE, whose default action
        // kills the daemon; we want the EPIPE error instead.
        _ = signal(SIGPIPE, SIG_IGN)
    }()

    public init() throws {
        _ = EventLoop.ignoreBrokenPipe
        let loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        let rc = uv_loop_init(loop)
        guard rc == 0 else {
            loop.deallocate()
            throw UVError(code: rc, operation: "uv_loop_init")
        }
        pointer = loop
        wakeup = UnsafeMutableRawPointer.allocate(byteCount: uv_handle_size(UV_ASYNC), alignment: 16)
            .assumingMemoryBound(to: uv_async_t.self)
        deadlineTimer = UnsafeMutableRawPointer.allocate(byteCount: uv_handle_size(UV_TIMER), alignment: 16)
            .assumingMemoryBound(to: uv_timer_t.self)
        readBuffer = .allocate(byteCount: EventLoop.readBufferSize, alignment: 16)
        thread = pthread_self()
        loop.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        // Neither call can fail on an initialised loop.
        uv_async_init(loop, wakeup) { async in
            EventLoop.owner(of: async!.pointee.loop).runQueuedWork()
        }
        uv_timer_init(loop, deadlineTimer)
        uv_unref(UnsafeMutableRawPointer(deadlineTimer).assumingMemoryBound(to: uv_handle_t.self))
    }

    deinit {
        if state != .closed { close() }
        UnsafeMutableRawPointer(wakeup).deallocate()
        UnsafeMutableRawPointer(deadlineTimer).deallocate()
        readBuffer.deallocate()
        pointer.deallocate()
    }

    static func owner(of loop: UnsafeMutablePointer<uv_loop_t>?) -> EventLoop {
        Unmanaged<EventLoop>.fromOpaque(loop!.pointee.data).takeUnretainedValue()
    }

    /// True when called on the thread that runs (or will run) this loop. Any thread.
    public var isOnLoopThread: Bool {
        lock.withLock { pthread_equal(thread, pthread_self()) != 0 }
    }

    /// The loop's cached clock in milliseconds (monotonic, updated once per
    /// loop iteration). Loop thread.
    public var now: UInt64 { uv_now(pointer) }

    /// Runs callbacks until `stop()`; it does not return just because no
    /// handle is active (the `execute` wake-up stays armed, as a daemon wants).
    /// The calling thread becomes the loop thread. Then call `close()`.
    public func run() {
        beginRun()
        uv_run(pointer, UV_RUN_DEFAULT)
        isRunning = false
    }

    /// Runs callbacks until `condition` holds (checked after each loop
    /// iteration) or `timeout` milliseconds pass; returns whether it held.
    /// For tests and CLI drivers that wait for one outcome.
    @discardableResult
    public func run(until condition: () -> Bool, timeout: UInt64) -> Bool {
        beginRun()
        defer {
            uv_timer_stop(deadlineTimer)
            isRunning = false
        }
        uv_update_time(pointer)
        let deadline = uv_now(pointer) + timeout
        while true {
            if condition() { return true }
            uv_update_time(pointer)
            let now = uv_now(pointer)
            if now >= deadline { return false }
            // The timer only has to wake the loop up; uv_run(ONCE) returns after it.
            uv_timer_start(deadlineTimer, { _ in }, deadline - now, 0)
            uv_run(pointer, UV_RUN_ONCE)
        }
    }

    private func beginRun() {
        precondition(state == .open, "EventLoop.run after close()")
        precondition(!isRunning, "EventLoop.run called from inside a loop callback")
        lock.withLock { thread = pthread_self() }
        isRunning = true
    }

    /// Makes `run()` return after the current iteration. Loop thread; from
    /// another thread use `execute { loop.stop() }`.
    public func stop() {
        uv_stop(pointer)
    }

    /// Queues `work` to run on the loop thread in a later iteration, in
    /// submission order. Safe from ANY thread: the one way other threads
    /// reach the loop. Returns false (and drops `work`) once `close()` began.
    @discardableResult
    public func execute(_ work: @escaping () -> Void) -> Bool {
        lock.withLock {
            guard acceptsWork else { return false }
            queued.append(work)
            // One wake-up per batch; the handler empties the queue under the
            // lock, so a non-empty queue means a wake-up is already pending.
            // Sending under the lock keeps it ordered before close() closes
            // the async handle.
            if queued.count == 1 { uv_async_send(wakeup) }
            return true
        }
    }

    private func runQueuedWork() {
        lock.withLock { swap(&queued, &spare) }
        for work in spare { work() }
        spare.removeAll(keepingCapacity: true)
    }

    /// Closes every handle still open, runs the loop until their close
    /// callbacks (and pending requests) have finished, and releases libuv's
    /// loop. Call on the loop thread, after `run()` returned (never from a
    /// callback). Work already accepted by `execute` runs first. Idempotent.
    public func close() {
        guard state == .open else { return }
        precondition(!isRunning, "EventLoop.close called from inside a loop callback")
        lock.withLock { acceptsWork = false }
        runQueuedWork()
        state = .closing
        uv_close(UnsafeMutableRawPointer(wakeup).assumingMemoryBound(to: uv_handle_t.self), nil)
        uv_close(UnsafeMutableRawPointer(deadlineTimer).assumingMemoryBound(to: uv_handle_t.self), nil)
        // Callbacks that run while closing (write and connect cancellations,
        // thread-pool completions) may open new handles: close until none is left.
        while true {
            uv_walk(pointer, { handle, _ in
                guard let handle, uv_is_closing(handle) == 0, let data = handle.pointee.data else { return }
                Unmanaged<Handle>.fromOpaque(data).takeUnretainedValue().close()
            }, nil)
            if uv_loop_alive(pointer) == 0 { break }
            uv_run(pointer, UV_RUN_ONCE)
        }
        let rc = uv_loop_close(pointer)
        assert(rc == 0, "uv_loop_close: \(String(cString: uv_err_name(rc)))")
        state = .closed
    }
}
