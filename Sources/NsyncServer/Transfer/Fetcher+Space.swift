#if canImport(Glibc)
import Glibc
#endif

/// Room on this node's disk: a fetch or an append never eats into the
/// reserve the raft log needs. A download starts only if it fits (a sparse
/// file: what its holder's disk holds), and each of its writes checks
/// again. The `checkSpace` functions run on the thread pool, the rest on
/// the loop thread.
extension Fetcher {
    /// Room kept free on the disk of `.nsync/` for the raft log and the
    /// manifest: when the node cannot append to its log it must stop, so a
    /// fetch that would eat into this waits instead.
    static func diskReserve(total: UInt64) -> UInt64 { min(64 << 20, total / 20) }

    /// The disk of `directory` as statvfs sees it, and the reserve kept there.
    private static func room(in directory: String) throws -> (space: (available: UInt64, total: UInt64), reserve: UInt64) {
        let space = try FileSystem.space(directory)
        return (space, diskReserve(total: space.total))
    }

    /// Throws ENOSPC, before a byte is written, when `needing` bytes of
    /// `record` (its size, or less for a sparse file whose holes stay
    /// holes here) would not fit next to the reserve. `why`, for the
    /// message: why it needs that much (shown when it is the whole size).
    static func checkSpace(for record: FileRecord, needing: UInt64, why: String? = nil, in directory: String) throws {
        let (space, reserve) = try room(in: directory)
        guard space.available >= needing + reserve else {
            let reason = needing < record.size ? "sparse: \(NodeStatus.bytes(record.size)) long" : why
            throw SystemError(errno: ENOSPC, operation: "\(record.path) needs \(NodeStatus.bytes(needing))"
                              + (reason.map { " (\($0))" } ?? "") + " and "
                              + "\(NodeStatus.bytes(reserve)) kept free for the raft log, but only "
                              + "\(NodeStatus.bytes(space.available)) are free in", path: directory)
        }
    }

    /// Throws ENOSPC, before they are written, when `adding` more bytes of
    /// `record` would eat into the reserve: the check at its start counted
    /// each file alone (several fetched at once may not fit together), a
    /// sparse file's holes may be smaller here than on its holder, and a
    /// resumed file had no such check. Called with each write's bytes,
    /// holes left out (`ChunkWriter.write`'s `room`).
    static func checkSpace(for record: FileRecord, adding: UInt64, in directory: String) throws {
        guard adding > 0 else { return }
        let (space, reserve) = try room(in: directory)
        guard space.available >= adding + reserve else {
            throw SystemError(errno: ENOSPC, operation: "\(NodeStatus.bytes(adding)) more of \(record.path) would leave less than "
                              + "\(NodeStatus.bytes(reserve)) kept free for the raft log (\(NodeStatus.bytes(space.available)) free)",
                              path: directory)
        }
    }

    /// What the first write of `transfer` needs free (its holder's word for
    /// a sparse file, unless this node found it takes more here), and why
    /// it needs its whole size if that is the reason.
    func roomNeeded(by transfer: Transfer) -> (bytes: UInt64, why: String?) {
        let size = transfer.record.size
        if denseHere.contains(VersionKey(path: transfer.record.path, version: transfer.record.version)) {
            return (size, "sparse on its holder, but its holes are too small to stay holes here")
        }
        return (min(size, transfer.holderAllocated ?? size), nil)
    }

    /// A write of a `.part` that found no room (its own check, or the disk
    /// full): what the `.part` took on disk then, and the bytes of the
    /// write refused. Its message is the underlying error's; callers that
    /// need the `SystemError` find it in `underlying`.
    struct OutOfRoom: Error, CustomStringConvertible {
        let underlying: SystemError
        let partAllocated: UInt64
        let refused: UInt64
        var description: String { underlying.description }

        /// Wraps `error` if it is a lack of room, measuring the open `part`
        /// (an fstat). Thread pool.
        init?(_ error: Error, part: FileDescriptor, refused: UInt64) {
            guard let error = error as? SystemError, error.isNoSpace else { return nil }
            underlying = error
            partAllocated = (try? FileSystem.allocatedBytes(descriptor: part.rawValue)) ?? 0
            self.refused = refused
        }
    }

    /// A write of `transfer` found no room: if its `.part` with the refused
    /// write would take more than its holder said the whole file takes
    /// (`holderAllocated`, as the job saw it), its holes do not stay holes
    /// here, and its next try needs its whole size up front. Within that
    /// word, it ran short because of other writes (several downloads at
    /// once): the word still holds. Not for early copies (version 0 names
    /// no content).
    func noteOutOfRoom(_ transfer: Transfer, _ outOfRoom: OutOfRoom, holderAllocated: UInt64?) {
        guard !transfer.speculative, let allocated = holderAllocated, allocated < transfer.record.size,
              outOfRoom.partAllocated + outOfRoom.refused > allocated else { return }
        if denseHere.count >= 1_000 { denseHere.removeAll() }
        denseHere.insert(VersionKey(path: transfer.record.path, version: transfer.record.version))
    }
}
