#if canImport(Glibc)
import Glibc
#endif

/// What `lstat`/`fstat` said about one file, as Swift values. Immutable; any thread.
public struct FileStatus: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        case regular, directory, symlink
        /// FIFOs, sockets and devices: never synced.
        case other
    }

    public var kind: Kind
    public var size: Int64
    /// Permission bits only (`st_mode & 0o7777`): the file type lives in `kind`.
    public var mode: UInt32
    /// Nanoseconds since the Unix epoch.
    public var modificationTime: Int64
    /// Nanoseconds since the Unix epoch; moves on every write and chmod, and
    /// cannot be set by a user, so it catches what an mtime reset would hide.
    public var changeTime: Int64
    public var inode: UInt64
    public var device: UInt64
    /// Names (hard links) of the inode.
    public var linkCount: UInt64

    public init(kind: Kind, size: Int64, mode: UInt32, modificationTime: Int64,
                changeTime: Int64 = 0, inode: UInt64 = 0, device: UInt64 = 0, linkCount: UInt64 = 1) {
        self.kind = kind
        self.size = size
        self.mode = mode
        self.modificationTime = modificationTime
        self.changeTime = changeTime
        self.inode = inode
        self.device = device
        self.linkCount = linkCount
    }

    init(_ st: stat) {
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .regular
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        default: kind = .other
        }
        size = Int64(st.st_size)
        mode = UInt32(st.st_mode) & 0o7777
        modificationTime = FileSystem.nanoseconds(st.st_mtim.tv_sec, st.st_mtim.tv_nsec)
        changeTime = FileSystem.nanoseconds(st.st_ctim.tv_sec, st.st_ctim.tv_nsec)
        inode = UInt64(st.st_ino)
        device = UInt64(st.st_dev)
        linkCount = UInt64(st.st_nlink)
    }

    /// True when both describe the same bytes as far as metadata can tell:
    /// same file, size and mtime and ctime. Used to detect a file that was
    /// written while it was being hashed.
    public func hasSameContentStamp(as other: FileStatus) -> Bool {
        inode == other.inode && device == other.device && size == other.size
            && modificationTime == other.modificationTime && changeTime == other.changeTime
    }
}

/// One name read from a directory, with its `lstat` taken relative to the
/// open directory (no second path walk). Immutable; any thread.
public struct DirectoryEntry: Sendable {
    /// The name as UTF-8 text, or nil when the bytes are not valid UTF-8
    /// (such a file cannot be a key of the index; the scanner reports it).
    public var name: String?
    public var rawName: [UInt8]
    /// Nil when the entry could not be examined (it vanished, or the
    /// directory is searchable by nobody); `statusError` says why.
    public var status: FileStatus?
    public var statusError: SystemError?

    /// The name for logs: invalid bytes shown as U+FFFD.
    public var displayName: String { name ?? String(decoding: rawName, as: UTF8.self) }
}

/// The result of hashing a file, with its status before and after reading,
/// so the caller can tell whether it was being written meanwhile. Any thread.
public struct FileHash: Sendable {
    public var digest: [UInt8]
    public var before: FileStatus
    public var after: FileStatus
    public var bytesRead: Int64

    /// True when nothing suggests the file changed while it was read.
    public var isStable: Bool {
        before.hasSameContentStamp(as: after) && bytesRead == after.size
    }
}

/// Which file a path names (device and inode, following links): the same
/// path naming another identity later was removed, replaced or unmounted
/// meanwhile. A plain value.
struct FileIdentity: Equatable {
    var device: UInt64
    var inode: UInt64

    /// The identity of what `path` names now; nil if nothing does (ENOENT,
    /// ENOTDIR). Any other failure is thrown: it proves nothing either way.
    static func of(_ path: String) throws -> FileIdentity? {
        do {
            let status = try FileSystem.statusFollowingLinks(path)
            return FileIdentity(device: status.device, inode: status.inode)
        } catch let error as SystemError where error.isNotFound || error.isNotDirectory {
            return nil
        }
    }
}

/// Thin synchronous POSIX file-system calls returning Swift values and
/// throwing `SystemError`. They block: call them from the thread pool (or
/// at start-up), never from the loop thread on a path that can be large.
public enum FileSystem {
    /// `lstat`: never follows a symlink.
    public static func status(_ path: String) throws -> FileStatus {
        var st = stat()
        _ = try valueOrErrno("lstat", path: path) { lstat(path, &st) }
        return FileStatus(st)
    }

    /// `stat`: follows symlinks (for the root of the synced tree, which an
    /// operator may well give as a link).
    public static func statusFollowingLinks(_ path: String) throws -> FileStatus {
        var st = stat()
        _ = try valueOrErrno("stat", path: path) { stat(path, &st) }
        return FileStatus(st)
    }

    /// `statvfs`: bytes still available to an unprivileged writer on the
    /// file system holding `path`, and that file system's size.
    public static func space(_ path: String) throws -> (available: UInt64, total: UInt64) {
        var info = statvfs()
        _ = try valueOrErrno("statvfs", path: path) { statvfs(path, &info) }
        return (UInt64(info.f_bavail) * UInt64(info.f_frsize), UInt64(info.f_blocks) * UInt64(info.f_frsize))
    }

    /// Bytes an open file occupies on its disk (`st_blocks` x 512): less
    /// than its size when it is sparse, a little more for a small dense one.
    /// Apart from `FileStatus` because it moves without the content changing
    /// (delayed allocation), so it must not take part in comparing stamps.
    public static func allocatedBytes(descriptor: Int32, path: String? = nil) throws -> UInt64 {
        var st = stat()
        _ = try valueOrErrno("fstat", path: path) { fstat(descriptor, &st) }
        return UInt64(max(0, st.st_blocks)) * 512
    }

    /// `fstat` of an open descriptor.
    public static func status(descriptor: Int32, path: String? = nil) throws -> FileStatus {
        var st = stat()
        _ = try valueOrErrno("fstat", path: path) { fstat(descriptor, &st) }
        return FileStatus(st)
    }

    /// The names in a directory, without `.` and `..`, in readdir order.
    /// Names that are not valid UTF-8 are left out; use `listDirectoryEntries`
    /// to see them.
    public static func listDirectory(_ path: String) throws -> [String] {
        try readDirectory(path, withStatus: false).compactMap(\.name)
    }

    /// The entries of a directory with each one's `lstat`, without `.` and
    /// `..`, in readdir order. Opening uses O_NOFOLLOW, so a directory that
    /// was swapped for a symlink since it was examined is refused (ENOTDIR),
    /// not followed.
    /// `followLinks` is for the root of the synced tree only.
    public static func listDirectoryEntries(_ path: String, followLinks: Bool = false) throws -> [DirectoryEntry] {
        try readDirectory(path, withStatus: true, followLinks: followLinks)
    }

    private static func readDirectory(_ path: String, withStatus: Bool, followLinks: Bool = false) throws -> [DirectoryEntry] {
        let stream = try DirectoryStream(path, followLinks: followLinks)
        var entries: [DirectoryEntry] = []
        while let entry = try stream.next(withStatus: withStatus) { entries.append(entry) }
        return entries
    }

    /// The target text of a symlink, exactly as stored (never resolved).
    public static func readLink(_ path: String) throws -> String {
        var capacity = 256
        while true {
            var buffer = [UInt8](repeating: 0, count: capacity)
            let count = try valueOrErrno("readlink", path: path) {
                buffer.withUnsafeMutableBufferPointer {
                    $0.baseAddress!.withMemoryRebound(to: CChar.self, capacity: capacity) {
                        readlink(path, $0, capacity)
                    }
                }
            }
            // A full buffer may mean truncation: grow and read again.
            if count < capacity {
                guard let target = String(validating: buffer[..<count], as: UTF8.self) else {
                    throw SystemError(errno: EILSEQ, operation: "readlink (target is not UTF-8)", path: path)
                }
                return target
            }
            capacity *= 2
        }
    }

    public static func createSymlink(at path: String, target: String) throws {
        _ = try valueOrErrno("symlink", path: path) { symlink(target, path) }
    }

    /// `chmod` of the permission bits. Follows symlinks: Linux has no modes on links.
    public static func setMode(_ path: String, _ mode: UInt32) throws {
        _ = try valueOrErrno("chmod", path: path) { chmod(path, mode_t(mode & 0o7777)) }
    }

    /// Sets mtime (nanoseconds since the epoch), and atime to the same, as
    /// `cp -p` does. Setting both is deliberate: the kernel reports a change
    /// of both times as IN_ATTRIB (metadata), but of mtime alone as
    /// IN_MODIFY, which watchers would take for a write in progress. With
    /// `noFollow` the link itself is stamped, which is how symlinks are synced.
    public static func setModificationTime(_ path: String, _ nanoseconds: Int64, noFollow: Bool = false) throws {
        let time = timeSpec(nanoseconds: nanoseconds)
        var times = [time, time]
        let flags = noFollow ? AT_SYMLINK_NOFOLLOW : 0
        _ = try valueOrErrno("utimensat", path: path) { utimensat(AT_FDCWD, path, &times, flags) }
    }

    public static func removeFile(_ path: String) throws {
        _ = try valueOrErrno("unlink", path: path) { unlink(path) }
    }

    public static func removeDirectory(_ path: String) throws {
        _ = try valueOrErrno("rmdir", path: path) { rmdir(path) }
    }

    public static func makeDirectory(_ path: String, mode: UInt32 = 0o755) throws {
        _ = try valueOrErrno("mkdir", path: path) { mkdir(path, mode_t(mode)) }
    }

    /// Hashes a regular file with plain read(2) in `chunkSize` pieces and
    /// returns its status before and after, so a file written meanwhile is
    /// detected (`FileHash.isStable`). The hasher is reset first. `progress`
    /// is told the bytes hashed so far after each chunk.
    public static func hashFile(_ path: String, into hasher: SHA256, chunkSize: Int = 1 << 20,
                                progress: ((Int64) -> Void)? = nil) throws -> FileHash {
        // O_NONBLOCK: opening a FIFO that replaced the file must not hang a
        // pool thread; it is a no-op for reads of a regular file.
        let fd = try valueOrErrno("open", path: path) {
            open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        }
        defer { close(fd) }
        let before = try status(descriptor: fd, path: path)
        guard before.kind == .regular else {
            throw SystemError(errno: EINVAL, operation: "hash (not a regular file)", path: path)
        }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        hasher.reset()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 4096)
        defer { buffer.deallocate() }
        var total: Int64 = 0
        while true {
            let count = try valueOrErrno("read", path: path) { read(fd, buffer.baseAddress, chunkSize) }
            if count == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
            total += Int64(count)
            progress?(total)
        }
        let after = try status(descriptor: fd, path: path)
        return FileHash(digest: hasher.finalize(), before: before, after: after, bytesRead: total)
    }

    /// SHA-256 of the first `count` bytes of `fd` (fewer if the file is
    /// shorter: the caller compares sizes first).
    public static func hashPrefix(of fd: FileDescriptor, count: UInt64, chunkSize: Int = 1 << 20) throws -> [UInt8] {
        let hasher = SHA256()
        var offset: UInt64 = 0
        while offset < count {
            let chunk = try fd.read(upToCount: Int(min(UInt64(chunkSize), count - offset)), at: Int64(offset))
            if chunk.isEmpty { break }
            hasher.update(chunk)
            offset += UInt64(chunk.count)
        }
        return hasher.finalize()
    }

    /// Nanoseconds since the epoch of a time's parts, saturated at Int64's
    /// range (1677-2262): ext4 keeps times up to 2446, and a file dated past
    /// 2262 must not stop the daemon. Such a file reads as 2262 everywhere.
    public static func nanoseconds(_ seconds: Int, _ nanoseconds: Int) -> Int64 {
        let (product, overflow) = Int64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return seconds < 0 ? .min : .max }
        let (sum, overflowed) = product.addingReportingOverflow(Int64(nanoseconds))
        return overflowed ? .max : sum
    }

    /// Whether a file stamped `modifiedAt` (ns since the epoch) and just
    /// read could be written again with the very same mtime: the kernel
    /// stamps a write with the coarse clock's time (one tick: 1-10 ms; a
    /// fine-grained stamp, Linux 6.13 on, is within a tick past it), so a
    /// write in the tick of the last one, after the read, changes no stat
    /// field when the size stays. Two ticks of margin either side; a time
    /// far from now (a file dated in the future) no write can give.
    public static func mayChangeUnseen(modifiedAt: Int64) -> Bool {
        let now = coarseNow()
        return modifiedAt >= now &- 2 * coarseTick && modifiedAt <= now &+ 2 * coarseTick
    }

    /// The coarse clock (what the kernel stamps files with), ns since the epoch.
    public static func coarseNow() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME_COARSE, &now)
        return nanoseconds(now.tv_sec, now.tv_nsec)
    }

    /// The coarse clock's resolution in ns (the kernel's tick).
    public static let coarseTick: Int64 = {
        var resolution = timespec()
        guard clock_getres(CLOCK_REALTIME_COARSE, &resolution) == 0 else { return 10_000_000 }
        return max(nanoseconds(resolution.tv_sec, resolution.tv_nsec), 1_000_000)
    }()

    /// Hashes a file until one pass sees it unchanged, at most `attempts`
    /// passes; the last result is returned either way and the caller treats
    /// an unstable one as "still being written" and tries again later.
    public static func hashStableFile(_ path: String, into hasher: SHA256, attempts: Int = 3,
                                      chunkSize: Int = 1 << 20,
                                      progress: ((Int64) -> Void)? = nil) throws -> FileHash {
        var result = try hashFile(path, into: hasher, chunkSize: chunkSize, progress: progress)
        var attempt = 1
        while !result.isStable && attempt < attempts {
            result = try hashFile(path, into: hasher, chunkSize: chunkSize, progress: progress)
            attempt += 1
        }
        return result
    }
}

extension SystemError {
    /// ENOTDIR: a path component (or the path itself) is not a directory.
    public var isNotDirectory: Bool { errno == ENOTDIR }
    /// ELOOP: O_NOFOLLOW met a symlink where a file was expected (for a
    /// directory, O_DIRECTORY|O_NOFOLLOW reports ENOTDIR instead).
    public var isSymlink: Bool { errno == ELOOP }

    static func notDirectory(_ operation: String, path: String) -> SystemError {
        SystemError(errno: ENOTDIR, operation: operation, path: path)
    }
}

/// A directory read an entry at a time (for a listing spread over several
/// turns of the loop), closed when released. Opened with O_NOFOLLOW unless
/// `followLinks`, as `FileSystem.listDirectoryEntries`. One thread at a time.
public final class DirectoryStream {
    public let path: String
    private let fd: Int32
    private let dir: OpaquePointer

    public init(_ path: String, followLinks: Bool = false) throws {
        let flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (followLinks ? 0 : O_NOFOLLOW)
        let fd = try valueOrErrno("open directory", path: path) { open(path, flags) }
        guard let dir = fdopendir(fd) else {
            let error = SystemError(errno: errno, operation: "fdopendir", path: path)
            close(fd)
            throw error
        }
        self.path = path
        self.fd = fd
        self.dir = dir
    }

    deinit { closedir(dir) }

    /// The next entry (without `.` and `..`), with its `lstat` when
    /// `withStatus`; nil at the end.
    public func next(withStatus: Bool = true) throws -> DirectoryEntry? {
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { throw SystemError(errno: errno, operation: "readdir", path: path) }
                return nil
            }
            let raw: [UInt8] = withUnsafeBytes(of: &entry.pointee.d_name) { bytes in
                Array(bytes[..<(bytes.firstIndex(of: 0) ?? bytes.count)])
            }
            if raw == [0x2e] || raw == [0x2e, 0x2e] { continue }
            var item = DirectoryEntry(name: String(validating: raw, as: UTF8.self), rawName: raw)
            if withStatus {
                var st = stat()
                let result = withUnsafePointer(to: &entry.pointee.d_name) {
                    $0.withMemoryRebound(to: CChar.self, capacity: raw.count + 1) {
                        fstatat(fd, $0, &st, AT_SYMLINK_NOFOLLOW)
                    }
                }
                if result == 0 {
                    item.status = FileStatus(st)
                } else {
                    item.statusError = SystemError(errno: errno, operation: "lstat", path: path + "/" + item.displayName)
                }
            }
            return item
        }
    }
}
