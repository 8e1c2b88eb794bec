import CLibUV

extension EventLoop {
    /// How much lower than the loop threads the pool threads run (nice
    /// levels: +5 gives a loop thread about three times a busy pool thread's
    /// share of a contended CPU). The pool does bulk work (hashing, copies,
    /// directory walks); the loop answers Raft, whose heartbeats must go out
    /// every tick. With three daemons on 2 cores and 100,000 files moved into
    /// the leader, the cluster changed leaders in 1 of 3 runs (and held a
    /// pre-vote in another) at the same nice level, in none of 3 with it.
    /// The Raft log's writes run on the pool too (mostly waiting for the
    /// disk, which nice does not slow unless the I/O scheduler derives
    /// priorities from it, as BFQ does).
    static let poolNiceIncrement: Int32 = 5

    /// Runs `work` on libuv's thread pool, then `completion` with its result
    /// on the loop thread. `work` must not touch loop-confined state: give it
    /// what it needs whole (immutable values, or buffers nobody else uses
    /// until `completion`). Loop thread. The pool has 4 threads unless
    /// UV_THREADPOOL_SIZE says otherwise.
    public func queueWork<T>(_ work: @escaping () -> T, completion: @escaping (T) -> Void) {
        let item = WorkItem(work: work, completion: completion)
        let request = UnsafeMutableRawPointer(item.request).assumingMemoryBound(to: uv_req_t.self)
        request.pointee.data = Unmanaged<WorkRequest>.passRetained(item).toOpaque()
        // Cannot fail: it only checks that the callback is not NULL.
        uv_queue_work(pointer, item.request, { request in
            nsync_lower_thread_priority_once(EventLoop.poolNiceIncrement)
            Unmanaged<WorkRequest>.fromOpaque(request!.pointee.data).takeUnretainedValue().perform()
        }, { request, status in
            let item = Unmanaged<WorkRequest>.fromOpaque(request!.pointee.data).takeRetainedValue()
            item.finish(status: status)
        })
    }
}

/// A `uv_work_t` and the type-erased work/completion pair; retained by the
/// request from submission to the after-work callback. The pool thread runs
/// `perform`, the loop thread `finish` — never both at once.
class WorkRequest {
    let request = UnsafeMutablePointer<uv_work_t>.allocate(capacity: 1)
    deinit { request.deallocate() }
    func perform() {}
    func finish(status: Int32) {}
}

private final class WorkItem<T>: WorkRequest {
    private var work: (() -> T)?
    private var completion: ((T) -> Void)?
    private var result: T?

    init(work: @escaping () -> T, completion: @escaping (T) -> Void) {
        self.work = work
        self.completion = completion
    }

    override func perform() {
        result = work?()
    }

    override func finish(status: Int32) {
        // We never uv_cancel work, so it always ran.
        precondition(status == 0, "queued work finished with \(status)")
        // Released here, on the loop thread, whatever the work captured.
        work = nil
        let completion = self.completion
        self.completion = nil
        completion?(result!)
    }
}
