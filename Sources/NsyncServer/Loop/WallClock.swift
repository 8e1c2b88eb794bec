#if canImport(Glibc)
import Glibc
#endif

extension EventLoop {
    /// Seconds since the Unix epoch (UTC), for names like conflict copies.
    /// Not for measuring time: use `now`.
    public var wallClockSeconds: Int64 { Int64(time(nil)) }
}

/// Monotonic time in nanoseconds, for measuring durations from any thread.
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
