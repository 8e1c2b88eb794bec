#if canImport(Glibc)
import Glibc
#endif
import CLibUV

/// The system calls that serve and install synced files: opening a path
/// strictly beneath the synced root, setting mode and mtime on a descriptor,
/// and making many files durable with one flush. Called on pool threads.
extension FileSystem {
    /// Opens `path` (relative) read-only beneath `root`, refusing every
    /// symlink on the way (O_NOFOLLOW per component): a request can never
    /// read outside the synced directory, whatever links the tree holds.
    public static func openBeneath(root: String, path: String) throws -> FileDescriptor {
        let components = path.split(separator: "/", omittingEmptySubsequences: false)
        guard !components.isEmpty, !components.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw SystemError(errno: EINVAL, operation: "open beneath root", path: path)
        }
        var directory = try valueOrErrno("open", path: root) { open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { close(directory) }
        // One system call where the kernel has openat2 (Linux 5.6+).
        let direct = nsync_open_beneath(directory, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        if direct >= 0 { return FileDescriptor(rawValue: direct, path: path) }
        let failure = errno
        if failure != ENOSYS && failure != EPERM && failure != EINTR {
            throw SystemError(errno: failure, operation: "open", path: path)
        }
        for component in components.dropLast() {
            let next = try valueOrErrno("open", path: path) {
                openat(directory, String(component), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            close(directory)
            directory = next
        }
        let fd = try valueOrErrno("open", path: path) {
            openat(directory, String(components.last!), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        }
        return FileDescriptor(rawValue: fd, path: path)
    }

    /// The first directory on the way to `path` (relative to `root`, its
    /// parents only) that exists and is not a directory: a symlink a user
    /// put in place of a synced directory, say. A call on `root/path` would
    /// leave the tree there (to wherever the link points). Nil when there is
    /// none (a missing parent is fine: installs make it a directory).
    public static func nonDirectoryOnTheWay(root: String, path: String) -> String? {
        var prefix = root
        for component in path.split(separator: "/").dropLast() {
            prefix += "/" + component
            guard let status = try? status(prefix) else { return nil }
            if status.kind != .directory { return prefix }
        }
        return nil
    }

    /// Asks the kernel to start writing `count` bytes at `offset` to disk now
    /// (sync_file_range WRITE: no waiting, no durability promise). Errors
    /// are ignored: the final fsync is what guarantees durability.
    public static func startWriteback(descriptor fd: Int32, offset: Int64, count: Int64) {
        _ = nsync_start_writeback(fd, offset, count)
    }

    /// fchmod: permission bits only.
    public static func setMode(descriptor fd: Int32, _ mode: UInt32) throws {
        _ = try valueOrErrno("fchmod") { fchmod(fd, mode_t(mode & 0o7777)) }
    }

    /// futimens: sets atime and mtime to `nanoseconds` since the epoch.
    public static func setModificationTime(descriptor fd: Int32, _ nanoseconds: Int64) throws {
        var times = [Glibc.timespec](repeating: timeSpec(nanoseconds: nanoseconds), count: 2)
        _ = try valueOrErrno("futimens") { futimens(fd, &times) }
    }

    static func timeSpec(nanoseconds: Int64) -> Glibc.timespec {
        var seconds = nanoseconds / 1_000_000_000
        var rest = nanoseconds % 1_000_000_000
        if rest < 0 {
            seconds -= 1
            rest += 1_000_000_000
        }
        return Glibc.timespec(tv_sec: Int(seconds), tv_nsec: Int(rest))
    }

    /// syncfs: one flush makes every file written on that file system
    /// durable — how a batch of small files costs one disk flush, not one each.
    public static func syncFileSystem(containing path: String) throws {
        let fd = try valueOrErrno("open", path: path) { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { close(fd) }
        _ = try valueOrErrno("syncfs", path: path) { nsync_syncfs(fd) }
    }

    /// Renames, replacing a file (not a non-empty directory) at the destination.
    public static func rename(_ source: String, to destination: String) throws {
        _ = try valueOrErrno("rename", path: destination) { Glibc.rename(source, destination) }
    }
}

extension FileDescriptor {
    /// The whole content of a (small) file: state files, ignore rules.
    public static func readWholeFile(_ path: String) throws -> [UInt8] {
        let fd = try open(path, .readOnly)
        return try fd.closeAfter { try fd.readAll() }
    }

    /// The content of a file that a user controls (`.nsyncignore`): only a
    /// regular file of at most `limit` bytes, never followed through a
    /// symlink, never blocking on a FIFO, never opening a device. Throws
    /// ELOOP for a symlink, EINVAL for anything else that is not a regular
    /// file, EFBIG past `limit`.
    public static func readRegularFile(_ path: String, limit: Int) throws -> [UInt8] {
        switch try FileSystem.status(path).kind {
        case .regular: break
        case .symlink: throw SystemError(errno: ELOOP, operation: "read (a symlink)", path: path)
        default: throw SystemError(errno: EINVAL, operation: "read (not a regular file)", path: path)
        }
        let fd = try open(path, .readOnly, options: Options(rawValue: O_NOFOLLOW | O_NONBLOCK))
        return try fd.closeAfter {
            let status = try FileSystem.status(descriptor: fd.rawValue, path: path)
            guard status.kind == .regular else { throw SystemError(errno: EINVAL, operation: "read (not a regular file)", path: path) }
            guard status.size <= limit else { throw SystemError(errno: EFBIG, operation: "read (larger than \(limit) bytes)", path: path) }
            return try fd.read(upToCount: Int(status.size), at: 0)
        }
    }
}
