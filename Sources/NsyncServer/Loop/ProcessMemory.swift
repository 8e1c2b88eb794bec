import CLibUV

/// Process-wide allocator settings for a daemon that moves data in 1 MiB
/// frames. Call once at start-up, before other threads exist.
public enum ProcessMemory {
    /// glibc serves allocations over 128 KiB with a fresh mmap and returns
    /// them with munmap, so every 1 MiB frame buffer faulted in 256 new pages
    /// (about 215,000 page faults per GiB received, measured). Keeping such
    /// buffers on the heap lets them be reused; the trim threshold keeps a
    /// few freed megabytes around instead of handing them back each time.
    public static func reuseLargeBuffers() {
        nsync_reuse_large_buffers()
    }
}
