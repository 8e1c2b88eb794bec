import CLibUV
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An open POSIX file descriptor: the one place file I/O calls C.
///
/// A thin value in the spirit of swift-system's `FileDescriptor`: it owns
/// nothing but the number, every call maps -1/errno to a `SystemError` that
/// names the operation and path, EINTR is retried, and short reads/writes
/// are looped over so callers never see them. Blocking: use it on the libuv
/// thread pool (or in tools and tests), never on the loop thread. A value may
/// move between threads; one descriptor is used by one thread at a time.
public struct FileDescriptor: Hashable, Sendable {
    /// The kernel's descriptor number.
    public let rawValue: Int32
    /// The path it was opened with, carried only so errors can name the file.
    public let path: String

    public init(rawValue: Int32, path: String) {
        self.rawValue = rawValue
        self.path = path
    }

    /// How a file is opened for reading and writing.
    public enum AccessMode: Sendable {
        case readOnly, writeOnly, readWrite
    }

    /// Extra `open(2)` flags. `O_CLOEXEC` is always set: a child process
    /// (hooks, tests) must never inherit the daemon's files.
    public struct Options: OptionSet, Sendable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
        public static let create = Options(rawValue: O_CREAT)
        /// With `.create`: fail with EEXIST if the file exists.
        public static let exclusive = Options(rawValue: O_EXCL)
        public static let truncate = Options(rawValue: O_TRUNC)
        public static let append = Options(rawValue: O_APPEND)
        public static let directory = Options(rawValue: O_DIRECTORY)
    }

    /// Opens `path`; `permissions` applies only when `.create` makes a new file.
    public static func open(
        _ path: String, _ mode: AccessMode, options: Options = [], permissions: UInt32 = 0o644
    ) throws -> FileDescriptor {
        let access: Int32 = switch mode {
        case .readOnly: O_RDONLY
        case .writeOnly: O_WRONLY
        case .readWrite: O_RDWR
        }
        let fd = try valueOrErrno("open", path: path) {
            Glibc.open(path, access | options.rawValue | O_CLOEXEC, mode_t(permissions))
        }
        return FileDescriptor(rawValue: fd, path: path)
    }

    /// Closes the descriptor. Not retried on EINTR: on Linux the descriptor
    /// is released even then, and a retry could close someone else's file.
    public func close() throws {
        if Glibc.close(rawValue) == -1, errno != EINTR {
            throw SystemError(errno: errno, operation: "close", path: path)
        }
    }

    /// Runs `body`, then closes the descriptor on every path (as swift-system does).
    public func closeAfter<R>(_ body: () throws -> R) throws -> R {
        let result: R
        do {
            result = try body()
        } catch {
            try? close()
            throw error
        }
        try close()
        return result
    }

    // MARK: reading

    /// Reads up to `count` bytes at `offset` without moving the file position;
    /// returns fewer only at end of file.
    public func read(upToCount count: Int, at offset: Int64) throws -> [UInt8] {
        precondition(count >= 0, "negative read count")
        var failure: SystemError?
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var done = 0
            while done < count {
                let n = Glibc.pread(rawValue, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                if n > 0 {
                    done += n
                } else if n == 0 {
                    break
                } else if errno != EINTR {
                    failure = SystemError(errno: errno, operation: "pread", path: path)
                    break
                }
            }
            initialized = done
        }
        if let failure { throw failure }
        return bytes
    }

    /// Reads the whole file from offset 0 (its size taken from `fstat`).
    public func readAll() throws -> [UInt8] {
        try read(upToCount: Int(try size()), at: 0)
    }

    // MARK: writing

    /// Writes every byte of `bytes` at `offset` without moving the file position.
    public func write<C: Collection>(all bytes: C, at offset: Int64) throws where C.Element == UInt8 {
        let done: Void? = try bytes.withContiguousStorageIfAvailable { buffer in
            try pwriteAll(UnsafeRawBufferPointer(buffer), at: offset)
        }
        if done == nil {
            try Array(bytes).withUnsafeBytes { try pwriteAll($0, at: offset) }
        }
    }

    /// Writes every byte of `bytes` at the current file position (the end, with `.append`).
    public func write<C: Collection>(all bytes: C) throws where C.Element == UInt8 {
        let done: Void? = try bytes.withContiguousStorageIfAvailable { buffer in
            try writeAll(UnsafeRawBufferPointer(buffer))
        }
        if done == nil {
            try Array(bytes).withUnsafeBytes { try writeAll($0) }
        }
    }

    private func pwriteAll(_ raw: UnsafeRawBufferPointer, at offset: Int64) throws {
        var done = 0
        while done < raw.count {
            let n = try valueOrErrno("pwrite", path: path) {
                Glibc.pwrite(rawValue, raw.baseAddress! + done, raw.count - done, off_t(offset) + off_t(done))
            }
            done += n
        }
    }

    private func writeAll(_ raw: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < raw.count {
            let n = try valueOrErrno("write", path: path) {
                Glibc.write(rawValue, raw.baseAddress! + done, raw.count - done)
            }
            done += n
        }
    }

    // MARK: durability and size

    /// Makes the file's data and all its metadata durable.
    public func sync() throws {
        _ = try valueOrErrno("fsync", path: path) { Glibc.fsync(rawValue) }
    }

    /// Makes the file's data durable, plus only the metadata needed to read
    /// it back (the size): cheaper than `sync()` when only mtime changed.
    public func syncData() throws {
        #if os(Linux)
        _ = try valueOrErrno("fdatasync", path: path) { Glibc.fdatasync(rawValue) }
        #else
        try sync()
        #endif
    }

    /// Cuts (or extends with zeros) the file to `size` bytes.
    public func truncate(to size: Int64) throws {
        _ = try valueOrErrno("ftruncate", path: path) { Glibc.ftruncate(rawValue, off_t(size)) }
    }

    /// Where the first byte of data at or after `offset` is (`SEEK_DATA`):
    /// everything before it is a hole, reading as zeros; nil when only a
    /// hole follows, up to the end. A file system that cannot tell says
    /// `offset` (all data), like the kernel's generic answer.
    public func nextData(from offset: Int64) throws -> Int64? {
        let at = Glibc.lseek(rawValue, off_t(offset), nsync_seek_data_whence())
        if at >= 0 { return Int64(at) }
        let e = Glibc.errno
        if e == ENXIO { return nil }
        if e == EINVAL { return offset }  // no SEEK_DATA here
        throw SystemError(errno: e, operation: "lseek SEEK_DATA", path: path)
    }

    /// The file's current size in bytes.
    public func size() throws -> Int64 {
        var info = stat()
        _ = try valueOrErrno("fstat", path: path) { Glibc.fstat(rawValue, &info) }
        return Int64(info.st_size)
    }
}

/// Path-level POSIX operations that durable-write code needs next to its
/// descriptors (rename, unlink, directory fsync). Blocking; any thread but
/// the loop thread.
extension FileDescriptor {
    /// Atomically replaces `destination` with `source` (same file system).
    /// Durable only after `syncDirectory` on the containing directory.
    public static func rename(_ source: String, to destination: String) throws {
        _ = try valueOrErrno("rename", path: "\(source) -> \(destination)") { Glibc.rename(source, destination) }
    }

    /// Removes a file. Durable only after `syncDirectory` on its directory.
    public static func unlink(_ path: String) throws {
        _ = try valueOrErrno("unlink", path: path) { Glibc.unlink(path) }
    }

    /// Removes a file if it exists; true when something was removed.
    @discardableResult
    public static func removeIfPresent(_ path: String) throws -> Bool {
        do {
            try unlink(path)
            return true
        } catch let error as SystemError where error.isNotFound {
            return false
        }
    }

    /// fsyncs a directory, making creations, renames and unlinks in it durable.
    public static func syncDirectory(_ path: String) throws {
        let fd = try FileDescriptor.open(path, .readOnly, options: .directory)
        try fd.closeAfter { try fd.sync() }
    }

    /// Creates `path` and any missing parents (like `mkdir -p`); an existing
    /// directory is fine, an existing non-directory is an error (ENOTDIR).
    public static func makeDirectories(_ path: String, permissions: UInt32 = 0o755) throws {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += component
            if Glibc.mkdir(prefix, mode_t(permissions)) == -1 {
                let e = errno
                guard e == EEXIST else { throw SystemError(errno: e, operation: "mkdir", path: prefix) }
                guard isDirectory(prefix) else { throw SystemError(errno: ENOTDIR, operation: "mkdir", path: prefix) }
            }
            prefix += "/"
        }
    }

    /// The names in a directory, without "." and "..", in no particular order.
    public static func listDirectory(_ path: String) throws -> [String] {
        guard let dir = Glibc.opendir(path) else {
            throw SystemError(errno: errno, operation: "opendir", path: path)
        }
        defer { Glibc.closedir(dir) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = Glibc.readdir(dir) else {
                if errno != 0 { throw SystemError(errno: errno, operation: "readdir", path: path) }
                return names
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
    }

    /// True when `path` exists (following symlinks).
    public static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    /// True when `path` is a directory (following symlinks).
    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }
}

/// An exclusive `flock` on a file, held for the life of the process or until
/// `release()`: how nsyncd refuses to run twice on one directory. The kernel
/// drops the lock when the process dies, so a crash leaves no stale lock.
/// Create and release it on one thread (start-up/shutdown).
public final class LockFile {
    /// Why the lock could not be taken.
    public enum Failure: Error, CustomStringConvertible, Equatable, Sendable {
        /// Another process holds it; `holder` is the pid it wrote, if readable.
        case held(path: String, holder: Int32?)

        public var description: String {
            switch self {
            case let .held(path, holder):
                let who = holder.map { "process \($0)" } ?? "another process"
                return "\(path) is locked by \(who): another nsyncd already runs on this directory; "
                    + "stop it first, or give this one a different directory"
            }
        }
    }

    public let path: String
    private var descriptor: FileDescriptor?

    /// Takes the lock without waiting, and writes our pid into the file so a
    /// second instance can say who holds it.
    public init(path: String) throws {
        self.path = path
        let fd = try FileDescriptor.open(path, .readWrite, options: .create, permissions: 0o600)
        while flock(fd.rawValue, LOCK_EX | LOCK_NB) == -1 {
            let e = errno
            if e == EINTR { continue }
            let holder = (try? fd.read(upToCount: 32, at: 0))
                .flatMap { Int32(String(decoding: $0, as: UTF8.self).trimmingNewline()) }
            try? fd.close()
            if e == EWOULDBLOCK { throw Failure.held(path: path, holder: holder) }
            throw SystemError(errno: e, operation: "flock", path: path)
        }
        do {
            try fd.truncate(to: 0)
            try fd.write(all: Array("\(getpid())\n".utf8), at: 0)
        } catch {
            try? fd.close()
            throw error
        }
        descriptor = fd
    }

    /// False once the lock file has no name left (its link count is 0):
    /// someone is removing the directory that holds it, as `rm -rf` does.
    /// True while it cannot be told (released, or `fstat` failed).
    public var isLinked: Bool {
        guard let descriptor, let status = try? FileSystem.status(descriptor: descriptor.rawValue, path: path) else {
            return true
        }
        return status.linkCount > 0
    }

    /// Releases the lock (closing the file releases it); idempotent.
    public func release() {
        if let descriptor { try? descriptor.close() }
        descriptor = nil
    }

    deinit { release() }
}

private extension String {
    func trimmingNewline() -> String {
        var s = Substring(self)
        while let last = s.last, last == "\n" || last == " " { s = s.dropLast() }
        return String(s)
    }
}
