import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// What `uv_fs_stat` / `uv_fs_fstat` reported. A value; any thread.
public struct FileStat: Equatable, Sendable {
    public var size: Int64
    /// Type and permission bits (`st_mode`).
    public var mode: UInt32
    /// Nanoseconds since the Unix epoch.
    public var modificationTime: Int64
    public var inode: UInt64
    public var device: UInt64

    // S_IFMT, S_IFREG, S_IFDIR (POSIX values; the macros import ambiguously).
    public var isRegularFile: Bool { mode & 0o170000 == 0o100000 }
    public var isDirectory: Bool { mode & 0o170000 == 0o040000 }
    public var permissions: UInt32 { mode & 0o7777 }

    init(_ st: uv_stat_t) {
        size = Int64(st.st_size)
        mode = UInt32(st.st_mode)
        modificationTime = FileSystem.nanoseconds(Int(st.st_mtim.tv_sec), Int(st.st_mtim.tv_nsec))
        inode = st.st_ino
        device = st.st_dev
    }
}

/// File requests run on libuv's thread pool (`uv_fs_*`), completing on the
/// loop thread — for file I/O that must not block the loop. Descriptors are
/// plain numbers owned by the caller. Call on the loop thread; every
/// completion runs exactly once, on the loop thread, never inside the call.
extension EventLoop {
    /// Opens (or with O_CREAT creates) `path`; O_CLOEXEC is added.
    public func openFile(atPath path: String, flags: Int32, mode: Int32 = 0o644,
                         completion: @escaping (Result<Int32, UVError>) -> Void) {
        FileRequest.submit(on: self, "open", path, start: { uv_fs_open($0, $1, path, flags | O_CLOEXEC, mode, $2) }) {
            completion($0.map { Int32($0.pointee.result) })
        }
    }

    /// Reads up to `buffer.freeCapacity` bytes at file `offset` into the
    /// buffer after its valid bytes and adds them to `count`; completes with
    /// the number read (0 at end of file). Leave `buffer` alone until then.
    public func readFile(_ fd: Int32, into buffer: IOBuffer, at offset: Int64,
                         completion: @escaping (Result<Int, UVError>) -> Void) {
        var buf = uv_buf_init((buffer.base + buffer.count).assumingMemoryBound(to: CChar.self), UInt32(buffer.freeCapacity))
        FileRequest.submit(on: self, "read", "fd \(fd)", keepAlive: buffer, start: { uv_fs_read($0, $1, fd, &buf, 1, offset, $2) }) { result in
            completion(result.map { request in
                let count = request.pointee.result
                buffer.count += count
                return count
            })
        }
    }

    /// Writes the valid bytes of `buffer` at file `offset`, all of them
    /// (a short write is continued). Leave `buffer` alone until `completion`.
    public func writeFile(_ fd: Int32, from buffer: IOBuffer, at offset: Int64,
                          completion: @escaping (UVError?) -> Void) {
        writeAll(fd, UnsafeRawPointer(buffer.base), buffer.count, offset, keepAlive: buffer, completion: completion)
    }

    /// Writes `bytes` at file `offset` without copying them.
    public func writeFile(_ fd: Int32, bytes: [UInt8], at offset: Int64,
                          completion: @escaping (UVError?) -> Void) {
        // The array kept alive in the request keeps its storage (see StreamHandle.write).
        guard let base = bytes.withUnsafeBytes({ $0.baseAddress }), !bytes.isEmpty else {
            execute { completion(nil) }
            return
        }
        writeAll(fd, base, bytes.count, offset, keepAlive: bytes, completion: completion)
    }

    private func writeAll(_ fd: Int32, _ base: UnsafeRawPointer, _ count: Int, _ offset: Int64,
                          keepAlive: Any?, completion: @escaping (UVError?) -> Void) {
        guard count > 0 else {
            execute { completion(nil) }
            return
        }
        var buf = uv_buf_init(UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: CChar.self)), UInt32(count))
        FileRequest.submit(on: self, "write", "fd \(fd)", keepAlive: keepAlive, start: { uv_fs_write($0, $1, fd, &buf, 1, offset, $2) }) { result in
            switch result {
            case .failure(let error): completion(error)
            case .success(let request):
                let written = request.pointee.result
                if written == count { return completion(nil) }
                // pwrite returning 0 for a non-empty buffer would loop forever.
                if written == 0 { return completion(UVError(code: UV_EIO.rawValue, operation: "write", target: "fd \(fd)")) }
                self.writeAll(fd, base + written, count - written, offset + Int64(written), keepAlive: keepAlive, completion: completion)
            }
        }
    }

    /// `fsync` (or `fdatasync` with `dataOnly`): the written bytes are durable when it completes.
    public func syncFile(_ fd: Int32, dataOnly: Bool = false, completion: @escaping (UVError?) -> Void) {
        FileRequest.submit(on: self, dataOnly ? "fdatasync" : "fsync", "fd \(fd)",
                           start: { dataOnly ? uv_fs_fdatasync($0, $1, fd, $2) : uv_fs_fsync($0, $1, fd, $2) }) {
            completion($0.error)
        }
    }

    public func closeFile(_ fd: Int32, completion: ((UVError?) -> Void)? = nil) {
        FileRequest.submit(on: self, "close", "fd \(fd)", start: { uv_fs_close($0, $1, fd, $2) }) { completion?($0.error) }
    }

    public func truncateFile(_ fd: Int32, to size: Int64, completion: @escaping (UVError?) -> Void) {
        FileRequest.submit(on: self, "ftruncate", "fd \(fd)", start: { uv_fs_ftruncate($0, $1, fd, size, $2) }) { completion($0.error) }
    }

    /// `stat` of `path` (following symlinks); `isNotFound` when it does not exist.
    public func statFile(atPath path: String, completion: @escaping (Result<FileStat, UVError>) -> Void) {
        FileRequest.submit(on: self, "stat", path, start: { uv_fs_stat($0, $1, path, $2) }) {
            completion($0.map { FileStat($0.pointee.statbuf) })
        }
    }

    /// When `path` (a symlink itself, not followed) was made, in ns since
    /// the epoch: statx's birth time through a synchronous `uv_fs_lstat`; 0
    /// where the file system keeps none, nil when it cannot be read. Tells
    /// a directory from another made later on a reused inode number.
    /// Blocking: for a rare look at one path.
    public func birthTime(of path: String) -> Int64? {
        var request = uv_fs_t()
        defer { uv_fs_req_cleanup(&request) }
        guard uv_fs_lstat(pointer, &request, path, nil) == 0 else { return nil }
        let born = request.statbuf.st_birthtim
        return FileSystem.nanoseconds(Int(born.tv_sec), Int(born.tv_nsec))
    }

    public func statFile(_ fd: Int32, completion: @escaping (Result<FileStat, UVError>) -> Void) {
        FileRequest.submit(on: self, "fstat", "fd \(fd)", start: { uv_fs_fstat($0, $1, fd, $2) }) {
            completion($0.map { FileStat($0.pointee.statbuf) })
        }
    }

    public func renameFile(from source: String, to destination: String, completion: @escaping (UVError?) -> Void) {
        FileRequest.submit(on: self, "rename", "\(source) -> \(destination)",
                           start: { uv_fs_rename($0, $1, source, destination, $2) }) { completion($0.error) }
    }

    public func removeFile(atPath path: String, completion: @escaping (UVError?) -> Void) {
        FileRequest.submit(on: self, "unlink", path, start: { uv_fs_unlink($0, $1, path, $2) }) { completion($0.error) }
    }
}

private extension Result {
    var error: Failure? { if case .failure(let error) = self { return error } else { return nil } }
}

/// One `uv_fs_t` with its completion and whatever must outlive it (the
/// buffer the pool thread reads into or writes from); retained by the
/// request's `data` until the callback. Loop thread.
private final class FileRequest {
    typealias Completion = (Result<UnsafeMutablePointer<uv_fs_t>, UVError>) -> Void
    let request: UnsafeMutablePointer<uv_fs_t>
    let operation: String
    let target: String
    var keepAlive: Any?
    var completion: Completion?

    private init(_ operation: String, _ target: String, keepAlive: Any?, completion: @escaping Completion) {
        request = .allocate(capacity: 1)
        request.initialize(to: uv_fs_t())  // zeroed, so cleanup is safe even after a failed start
        self.operation = operation
        self.target = target
        self.keepAlive = keepAlive
        self.completion = completion
    }

    deinit { request.deallocate() }

    static func submit(on loop: EventLoop, _ operation: String, _ target: String, keepAlive: Any? = nil,
                       start: (UnsafeMutablePointer<uv_loop_t>, UnsafeMutablePointer<uv_fs_t>, uv_fs_cb) -> Int32,
                       completion: @escaping Completion) {
        let item = FileRequest(operation, target, keepAlive: keepAlive, completion: completion)
        item.request.pointee.data = Unmanaged.passRetained(item).toOpaque()
        let rc = start(loop.pointer, item.request) { request in
            Unmanaged<FileRequest>.fromOpaque(request!.pointee.data).takeRetainedValue().finish()
        }
        if rc < 0 {
            // libuv will not call back: report from a later iteration.
            item.request.pointee.result = Int(rc)
            let retained = Unmanaged<FileRequest>.fromOpaque(item.request.pointee.data)
            if !loop.execute({ retained.takeRetainedValue().finish() }) { retained.takeRetainedValue().finish() }
        }
    }

    private func finish() {
        let result = request.pointee.result
        let completion = self.completion
        self.completion = nil
        if result < 0 {
            completion?(.failure(UVError(code: Int32(result), operation: operation, target: target)))
        } else {
            completion?(.success(request))
        }
        uv_fs_req_cleanup(request)
        keepAlive = nil
    }
}
