import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// Writes a download's chunks into its temporary file. A large download goes
/// around the page cache (O_DIRECT): contiguous chunks are gathered in an
/// aligned buffer and written straight to the device. Stateless apart from a
/// small pool of buffers; any thread but the loop thread, one job per file at
/// a time.
///
/// Why: a buffered write copies every byte into newly allocated page-cache
/// pages. On a 2-core VM that copy was the largest single cost of a 1 GiB
/// sync (30-40% of all CPU), although the file is fsync'd before its install
/// anyway, so the cache only delayed the device write. The gathering copy
/// goes into the same warm buffer every time and costs a few percent of that.
/// Where a file system refuses direct I/O, or a piece is not aligned (a
/// file's last bytes, an odd resume offset), the descriptor switches to
/// ordinary writes for the rest of the file: slower, never wrong.
///
/// Runs of `minimumHole` or more of pages (`alignment` bytes at offsets
/// that are multiples of it) that are all zeros and lie past the file's end
/// when a `write` starts are not written: the file gets a hole there, which
/// reads as zeros and takes no room. A sparse file (a VM image, a
/// preallocated database) stays sparse on every node, as Syncthing does
/// it; a write that ends in such pages extends the file to its end. Bytes
/// already in the file are always overwritten, zeros or not (a resumed
/// download may rewrite them).
public enum ChunkWriter {
    /// Offsets, lengths and memory of direct writes are multiples of this
    /// (4 KiB covers every common logical block size).
    public static let alignment = 4096
    /// The gathering buffer: one direct write per MiB.
    static let bufferSize = 1 << 20

    /// Creates or truncates `path` (mode 0600) for a download; with
    /// `direct`, around the page cache where the file system allows it and
    /// has one (not tmpfs: its pages are the file).
    public static func create(_ path: String, direct: Bool) throws -> FileDescriptor {
        if direct {
            let flags = O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | nsync_open_direct_flag()
            let fd = Glibc.open(path, flags, mode_t(0o600))
            if fd >= 0 {
                if nsync_is_memory_fs(fd) == 1 { _ = nsync_set_direct(fd, 0) }
                return FileDescriptor(rawValue: fd, path: path)
            }
            // EINVAL: this file system has no direct I/O. Anything else is
            // a real failure, reported by the ordinary open below.
        }
        do {
            return try FileDescriptor.open(path, .readWrite, options: [.create, .truncate], permissions: 0o600)
        } catch let error as SystemError where error.errno == EACCES && FileDescriptor.exists(path) {
            // A download verified earlier, which took the record's mode
            // (0444, say), then could not be installed: start it afresh.
            _ = try FileDescriptor.removeIfPresent(path)
            return try FileDescriptor.open(path, .readWrite, options: [.create, .truncate], permissions: 0o600)
        }
    }

    /// Whether writes to `fd` go around the page cache.
    public static func isDirect(_ fd: FileDescriptor) -> Bool {
        nsync_is_direct(fd.rawValue) == 1
    }

    /// Writes every chunk at its offset, calling `each` with a chunk once it
    /// is handed on (while its bytes are still in the CPU's cache: the
    /// caller hashes there). Before each write call, `room` is told how
    /// many bytes it writes (holes left out), and may refuse by throwing.
    public static func write(_ chunks: [(offset: UInt64, bytes: ArraySlice<UInt8>)], to fd: FileDescriptor,
                             room: (Int) throws -> Void = { _ in }, each: (ArraySlice<UInt8>) -> Void) throws {
        try withoutActuallyEscaping(room) { room in
            try write(chunks, to: fd, sparse: Sparse(fd: fd, holesFrom: UInt64(try fd.size()), room: room), each: each)
        }
    }

    private static func write(_ chunks: [(offset: UInt64, bytes: ArraySlice<UInt8>)], to fd: FileDescriptor,
                              sparse: Sparse, each: (ArraySlice<UInt8>) -> Void) throws {
        guard let last = chunks.last else { return }
        var sparse = sparse
        if isDirect(fd) {
            let buffer = buffers.take()
            defer { buffers.give(buffer) }
            var gather = Gather(sparse: sparse, buffer: buffer)
            for chunk in chunks {
                if gather.direct {
                    try gather.append(chunk.bytes, at: chunk.offset)
                } else {
                    try gather.sparse.write(chunk.bytes, at: chunk.offset)
                }
                each(chunk.bytes)
            }
            try gather.flush()
            sparse = gather.sparse
        } else {
            for chunk in chunks {
                try sparse.write(chunk.bytes, at: chunk.offset)
                each(chunk.bytes)
            }
        }
        try sparse.extend(to: last.offset + UInt64(last.bytes.count))
    }

    /// Zero pages are left as holes only in runs of at least this much: a
    /// lone zero page (common in a file-system image or a database) would
    /// cut a direct write in two for 4 KiB of room.
    static let minimumHole = 64 << 10

    /// Writes one job's bytes, leaving holes for runs of zero pages past
    /// `holesFrom` (the file's size when the job started: bytes before it
    /// are always overwritten), and remembers how far it wrote. The job's
    /// thread (the pool).
    private struct Sparse {
        let fd: FileDescriptor
        let holesFrom: UInt64
        /// Asked before each write, with its byte count (`write`'s `room`).
        let room: (Int) throws -> Void
        /// The end of the last byte written (0: none).
        var writtenEnd: UInt64 = 0

        init(fd: FileDescriptor, holesFrom: UInt64, room: @escaping (Int) throws -> Void) {
            self.fd = fd
            self.holesFrom = holesFrom
            self.room = room
        }

        /// Writes `bytes` at `offset` through the page cache, but for holes.
        mutating func write(_ bytes: ArraySlice<UInt8>, at offset: UInt64) throws {
            try bytes.withUnsafeBytes { try write($0, at: offset) }
        }

        mutating func write(_ raw: UnsafeRawBufferPointer, at offset: UInt64) throws {
            for range in runs(raw, at: offset) {
                try askRoom(range, at: offset)
                try fd.write(all: UnsafeRawBufferPointer(rebasing: raw[range]), at: Int64(offset) + Int64(range.lowerBound))
                writtenEnd = max(writtenEnd, offset + UInt64(range.upperBound))
            }
        }

        /// The same around the page cache (the caller aligned offset and
        /// length); false when the file or device refused it (EINVAL: it
        /// wants other alignment): the caller goes buffered and writes it
        /// all again.
        mutating func writeDirect(_ raw: UnsafeRawBufferPointer, at offset: UInt64) throws -> Bool {
            for range in runs(raw, at: offset) {
                try askRoom(range, at: offset)
                var done = range.lowerBound
                while done < range.upperBound {
                    let n = Glibc.pwrite(fd.rawValue, raw.baseAddress! + done, range.upperBound - done, off_t(offset) + off_t(done))
                    if n > 0 {
                        done += n
                    } else if n == -1, errno == EINTR {
                        continue
                    } else if n == -1, errno != EINVAL {
                        throw SystemError(errno: errno, operation: "pwrite", path: fd.path)
                    } else {
                        return false
                    }
                }
                writtenEnd = max(writtenEnd, offset + UInt64(range.upperBound))
            }
            return true
        }

        /// Asks `room` for the bytes of `range` (of a buffer at file offset
        /// `offset`) this job has not written yet: a direct write refused
        /// part-way is written again through the page cache, and the bytes
        /// it did write take no new room.
        private func askRoom(_ range: Range<Int>, at offset: UInt64) throws {
            let end = offset + UInt64(range.upperBound)
            let start = max(offset + UInt64(range.lowerBound), writtenEnd)
            if end > start { try room(Int(end - start)) }
        }

        /// The ranges of `raw` (at file offset `offset`) to write: all of it
        /// but runs of `minimumHole` or more of whole zero pages past `holesFrom`.
        private func runs(_ raw: UnsafeRawBufferPointer, at offset: UInt64) -> [Range<Int>] {
            let page = ChunkWriter.alignment
            var ranges: [Range<Int>] = []
            var run = 0  // the first byte not yet written or skipped
            var zeros: Int?  // where the current run of zero pages started
            var at = 0
            func endZeros(at end: Int) {
                if let start = zeros, end - start >= ChunkWriter.minimumHole {
                    if run < start { ranges.append(run..<start) }
                    run = end
                }
                zeros = nil
            }
            while at < raw.count {
                let pageStart = offset + UInt64(at)
                let next = min(raw.count, at + page - Int(pageStart % UInt64(page)))
                if next - at == page, pageStart >= holesFrom, Zeros.are(raw.baseAddress! + at, count: page) {
                    if zeros == nil { zeros = at }
                } else {
                    endZeros(at: at)
                }
                at = next
            }
            endZeros(at: raw.count)
            if run < raw.count { ranges.append(run..<raw.count) }
            return ranges
        }

        /// A job that ended in a hole: the file is extended to `end`, as
        /// if the zeros were written (a relay reads up to what its
        /// transfer wrote, a resume hashes the file's length).
        func extend(to end: UInt64) throws {
            if end > max(holesFrom, writtenEnd) { try fd.truncate(to: Int64(end)) }
        }
    }

    /// Contiguous bytes collected for one direct write. The job's thread.
    private struct Gather {
        var sparse: Sparse
        let buffer: UnsafeMutableRawPointer
        var direct = true
        var start: UInt64 = 0
        var filled = 0

        init(sparse: Sparse, buffer: UnsafeMutableRawPointer) {
            self.sparse = sparse
            self.buffer = buffer
        }

        mutating func append(_ bytes: ArraySlice<UInt8>, at offset: UInt64) throws {
            if filled > 0, start + UInt64(filled) != offset { try flush() }
            var rest = bytes
            var at = offset
            while !rest.isEmpty, direct {
                if filled == 0 { start = at }
                let n = min(rest.count, ChunkWriter.bufferSize - filled)
                rest.prefix(n).withUnsafeBytes { (buffer + filled).copyMemory(from: $0.baseAddress!, byteCount: n) }
                filled += n
                at += UInt64(n)
                rest = rest.dropFirst(n)
                if filled == ChunkWriter.bufferSize { try flush() }
            }
            if !rest.isEmpty { try sparse.write(rest, at: at) }
        }

        /// Writes what is gathered: the aligned part directly, an unaligned
        /// rest (or all of it, where direct writes are refused) through the
        /// page cache, and the descriptor stays that way.
        mutating func flush() throws {
            guard filled > 0 else { return }
            let alignment = ChunkWriter.alignment
            var done = 0
            if start % UInt64(alignment) == 0 {
                let aligned = filled & ~(alignment - 1)
                if aligned > 0, try sparse.writeDirect(UnsafeRawBufferPointer(start: buffer, count: aligned), at: start) {
                    done = aligned
                }
            }
            if done < filled {
                try goBuffered()
                try sparse.write(UnsafeRawBufferPointer(start: buffer + done, count: filled - done), at: start + UInt64(done))
            }
            filled = 0
        }

        private mutating func goBuffered() throws {
            direct = false
            if nsync_set_direct(sparse.fd.rawValue, 0) == -1 {
                throw SystemError(errno: errno, operation: "fcntl(F_SETFL)", path: sparse.fd.path)
            }
        }
    }

    private static let buffers = BufferPool()

    /// Aligned gathering buffers, kept for reuse (one per pool thread at
    /// most is ever in use): a fresh one would be fresh pages to fault in.
    private final class BufferPool: @unchecked Sendable {
        private let lock = Lock()
        private var free: [UnsafeMutableRawPointer] = []
        private let keep = 8

        func take() -> UnsafeMutableRawPointer {
            lock.withLock { free.popLast() }
                ?? UnsafeMutableRawPointer.allocate(byteCount: ChunkWriter.bufferSize, alignment: ChunkWriter.alignment)
        }

        func give(_ buffer: UnsafeMutableRawPointer) {
            let kept = lock.withLock {
                guard free.count < keep else { return false }
                free.append(buffer)
                return true
            }
            if !kept { buffer.deallocate() }
        }
    }
}
