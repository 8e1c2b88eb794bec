#ifndef NSYNC_CLIBUV_SHIM_H
#define NSYNC_CLIBUV_SHIM_H
#include <uv.h>
#include <sys/inotify.h>
#include <unistd.h>

// syncfs(2) is a GNU extension Swift's Glibc module does not declare.
extern int syncfs(int fd);
static inline int nsync_syncfs(int fd) { return syncfs(fd); }

#include <malloc.h>
#include <fcntl.h>

// Starts writeback of a byte range without waiting (a GNU extension Swift's
// Glibc module does not declare): a large download is flushed while it
// arrives, so its final fsync has little left to do.
extern int sync_file_range(int fd, long long offset, long long nbytes, unsigned int flags);
static inline int nsync_start_writeback(int fd, long long offset, long long nbytes) {
    return sync_file_range(fd, offset, nbytes, 2 /* SYNC_FILE_RANGE_WRITE */);
}
// SEEK_DATA is a GNU extension Swift's Glibc module does not declare: a
// holder finds a sparse file's holes without reading them.
static inline int nsync_seek_data_whence(void) {
#ifdef SEEK_DATA
    return SEEK_DATA;
#else
    return 3;  /* Linux's value */
#endif
}
// O_DIRECT is a GNU extension Swift's Glibc module does not declare; its
// value differs between architectures, so it comes from the C headers.
// A large download is written around the page cache (see ChunkWriter).
static inline int nsync_open_direct_flag(void) { return __O_DIRECT; }
static inline int nsync_is_direct(int fd) {
    int flags = fcntl(fd, F_GETFL);
    return flags == -1 ? -1 : (flags & __O_DIRECT) != 0;
}
static inline int nsync_set_direct(int fd, int on) {
    int flags = fcntl(fd, F_GETFL);
    if (flags == -1) return -1;
    return fcntl(fd, F_SETFL, on ? (flags | __O_DIRECT) : (flags & ~__O_DIRECT));
}
#include <sys/vfs.h>
// Whether `fd` is on a file system kept in memory (tmpfs, ramfs): there a
// direct write is an ordinary one (Linux 6.6 accepts O_DIRECT on tmpfs),
// and gathering chunks for it only copies them once more.
static inline int nsync_is_memory_fs(int fd) {
    struct statfs fs;
    if (fstatfs(fd, &fs) != 0) return 0;
    return fs.f_type == 0x01021994 /* TMPFS_MAGIC */ || fs.f_type == (long)0x858458f6 /* RAMFS_MAGIC */;
}
#include <sys/syscall.h>
#include <linux/openat2.h>
#include <errno.h>

// openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS: opens `path` under
// `dirfd` in one call, refusing "..", absolute paths and every symlink.
// Returns -1 with errno ENOSYS on kernels before 5.6 (callers fall back).
static inline int nsync_open_beneath(int dirfd, const char *path, int flags) {
#ifdef SYS_openat2
    struct open_how how = {0};
    how.flags = (unsigned long long)flags;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
#else
    errno = ENOSYS;
    return -1;
#endif
}
// Keep large (frame-sized) buffers on the heap instead of a fresh mmap each.
static inline void nsync_reuse_large_buffers(void) {
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
}
// Hands free heap pages back to the kernel, including those between live
// allocations (which the trim threshold alone never returns).
static inline void nsync_release_free_memory(void) { malloc_trim(0); }

#include <errno.h>
#include <sys/resource.h>
#include <sys/syscall.h>
// The calling thread's nice value (-1 is also the error value; for tests).
static inline int nsync_thread_nice(void) {
    return getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
}
// Raises the calling thread's nice value by `increment` (at most to 19), once
// per thread: on Linux the nice value belongs to the thread, not the process.
static inline void nsync_lower_thread_priority_once(int increment) {
    static __thread int lowered;
    if (lowered) return;
    lowered = 1;
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int nice_now = getpriority(PRIO_PROCESS, tid);
    if (nice_now == -1 && errno != 0) return;
    int target = nice_now + increment > 19 ? 19 : nice_now + increment;
    (void)setpriority(PRIO_PROCESS, tid, target);
}
#endif
