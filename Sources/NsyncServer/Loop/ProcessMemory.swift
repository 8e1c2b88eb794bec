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

    /// Returns the heap's free pages to the kernel (malloc_trim). After a
    /// burst (100,000 files synced) a daemon held twice its live heap:
    /// freed index batches, queues and snapshot buffers stay resident under
    /// the trim threshold or between live allocations. Blocking for a few
    /// milliseconds on a large heap: call it on the thread pool.
    public static func releaseFreeMemory() {
        nsync_release_free_memory()
    }
}
