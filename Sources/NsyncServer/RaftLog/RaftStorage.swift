/// Raft's durable state in one directory (`<PATH>/.nsync/raft`): the term,
/// vote and commit index, a segmented write-ahead log of entries, and the
/// latest snapshot. It owns those files, the open segment's descriptor and
/// the directory's lock.
///
/// Threads: every call blocks on disk I/O, so the Raft driver calls it from
/// the libuv thread pool, one job at a time. It is not thread-safe: calls
/// must not overlap, and successive calls on different pool threads are
/// ordered by the loop handing each job over after the previous one ended.
///
/// Durability contract (etcd-style "persist before send"): `append` and
/// `setHardState` only stage; `sync()` makes everything staged durable, and
/// the driver sends messages that depend on it only after `sync()` returns.
/// One `sync()` per batch is the group commit: one fdatasync of the open
/// segment covers every entry appended since the last one. Term and vote
/// changes are fdatasync'd in `sync()` too; commit-only changes are written
/// but not fdatasync'd (Raft relearns the commit index from the leader, so
/// losing its latest value in a crash is harmless; etcd does the same).
/// Snapshot saving and suffix truncation are durable when they return.
///
/// After any thrown I/O error the in-memory view may no longer match the
/// disk, so the instance refuses every further call with the same error:
/// close it and open the directory again (recovery repairs what a failed
/// write left), or stop the node.
public final class RaftStorage {
    /// Tunables; the defaults are for production, tests shrink them.
    public struct Options: Sendable {
        /// A segment is closed when the next record would take it past this
        /// size (a single larger record still gets a segment of its own).
        public var maxSegmentBytes: Int = 64 << 20
        /// Staged records are written to the file once this many bytes wait.
        public var writeBufferBytes: Int = 1 << 20

        public init(maxSegmentBytes: Int = 64 << 20, writeBufferBytes: Int = 1 << 20) {
            self.maxSegmentBytes = maxSegmentBytes
            self.writeBufferBytes = writeBufferBytes
        }
    }

    /// What `open` found on disk, for the driver to rebuild Raft from.
    public struct RecoveredState: Sendable {
        public var hardState: HardState
        public var snapshot: RaftSnapshot?
        /// Every entry after the snapshot, contiguous.
        public var entries: [RaftEntry]
        /// What recovery repaired, one line each, for the operator's log.
        public var notes: [String]
    }

    /// One segment file's place in the log.
    struct Segment {
        let firstIndex: UInt64
        /// File offset of each record, by index - firstIndex.
        var offsets: [UInt32]
        /// Size of the file including staged, unwritten bytes.
        var size: Int64
        var fileName: String { LogSegmentFormat.fileName(firstIndex: firstIndex) }
        /// firstIndex - 1 when the segment holds no record.
        var lastIndex: UInt64 { firstIndex + UInt64(offsets.count) - 1 }
    }

    /// The most data one entry may carry (about 1 GiB): batch commands below it.
    public static let maxEntryDataBytes = LogSegmentFormat.maxPayloadSize - LogSegmentFormat.payloadFixedSize

    public let directory: String
    let options: Options
    private var lock: LockFile?
    var segments: [Segment]
    /// The last segment's descriptor, open for writing; nil when there is no segment.
    var openFile: FileDescriptor?
    /// Records encoded but not yet written to `openFile`.
    var staged = ByteBuffer()
    /// Bytes of the last segment already written to the file.
    var writtenSize: Int64
    /// Written since the last fdatasync of the open segment.
    var segmentNeedsSync = false
    /// A segment was created since the directory was last fsync'd.
    var directoryNeedsSync = false
    var hardStateFiles: HardStateFiles
    var hardState: HardState
    /// The last index known durable; stamped into every record (see LogSegmentFormat).
    var syncedIndex: UInt64
    var snapshotMetadata: SnapshotMetadata?
    /// Set by the first I/O error; every later call rethrows it.
    private var failure: Error?

    /// The first index still in the log (snapshot index + 1, or 1).
    public internal(set) var firstIndex: UInt64
    /// The last index in the log, or the snapshot's index when the log is empty.
    public internal(set) var lastIndex: UInt64
    /// The hard state as last set (durable after the next `sync()`).
    public var currentHardState: HardState { hardState }

    init(directory: String, options: Options, lock: LockFile, recovered: Recovery) {
        self.directory = directory
        self.options = options
        self.lock = lock
        segments = recovered.segments
        openFile = recovered.openFile
        writtenSize = recovered.segments.last?.size ?? 0
        hardStateFiles = recovered.hardStateFiles
        hardState = recovered.state.hardState
        snapshotMetadata = recovered.state.snapshot?.metadata
        let snapshotIndex = recovered.state.snapshot?.metadata.index ?? 0
        firstIndex = snapshotIndex + 1
        lastIndex = max(snapshotIndex, recovered.segments.last?.lastIndex ?? 0)
        syncedIndex = lastIndex
        staged.reserveCapacity(options.writeBufferBytes + 4096)
    }

    deinit { close() }

    /// Closes the files and releases the directory lock; later calls fail.
    /// Appends not yet synced may or may not survive, as in a crash.
    public func close() {
        // Idempotent: deinit calls it again, and closing a descriptor number
        // twice could close a file someone opened since under the same number.
        if case .closed = failure as? RaftStorageError { return }
        try? openFile?.close()
        openFile = nil
        hardStateFiles.close()
        lock?.release()
        lock = nil
        failure = RaftStorageError.closed(directory: directory)
    }

    /// Runs `body`, poisoning the instance if it throws an I/O error.
    func guarded<R>(_ body: () throws -> R) throws -> R {
        if let failure { throw failure }
        do {
            return try body()
        } catch let error as RaftStorageError {
            if case .invalidAppend = error { throw error }  // a caller bug changed nothing
            if case .unavailable = error { throw error }
            failure = error
            throw error
        } catch {
            failure = error
            throw error
        }
    }

    // MARK: appending

    /// Stages `entries` (contiguous indexes) for the next `sync()`. When the
    /// first index is at or below `lastIndex`, the log from that index on is
    /// removed first, durably: a new leader overwriting a follower's suffix.
    public func append(_ entries: [RaftEntry]) throws {
        guard let first = entries.first else { return }
        for (offset, entry) in entries.enumerated() {
            guard entry.index == first.index + UInt64(offset) else {
                throw RaftStorageError.invalidAppend(
                    "entries not contiguous: index \(entry.index) at position \(offset) after \(first.index)")
            }
            // Recovery reads a longer record as damage, so it must never be written.
            guard entry.data.count <= Self.maxEntryDataBytes else {
                throw RaftStorageError.invalidAppend(
                    "entry \(entry.index) carries \(entry.data.count) bytes, over the \(Self.maxEntryDataBytes)-byte limit")
            }
        }
        guard first.index >= firstIndex, first.index <= lastIndex + 1 else {
            throw RaftStorageError.invalidAppend(
                "entry \(first.index) outside \(firstIndex)...\(lastIndex + 1) (the snapshot covers up to \(firstIndex - 1))")
        }
        try guarded {
            if first.index <= lastIndex { try truncateSuffix(from: first.index) }
            for entry in entries {
                let size = LogSegmentFormat.recordSize(entry)
                if segments.isEmpty
                    || (!segments[segments.count - 1].offsets.isEmpty
                        && segments[segments.count - 1].size + Int64(size) > Int64(options.maxSegmentBytes)) {
                    try startSegment(firstIndex: entry.index)
                }
                let last = segments.count - 1
                segments[last].offsets.append(UInt32(segments[last].size))
                LogSegmentFormat.appendRecord(entry, syncedIndex: syncedIndex, to: &staged)
                segments[last].size += Int64(size)
                lastIndex = entry.index
                if staged.bytes.count >= options.writeBufferBytes { try writeStaged() }
            }
        }
    }

    /// Stages the term, vote and commit index for the next `sync()`.
    public func setHardState(_ state: HardState) throws {
        try guarded { hardState = state }
    }

    /// Makes every append and hard state since the last sync durable.
    public func sync() throws {
        try guarded {
            try writeStaged()
            if segmentNeedsSync, let openFile {
                try openFile.syncData()
                segmentNeedsSync = false
            }
            if directoryNeedsSync {
                try FileDescriptor.syncDirectory(directory)
                directoryNeedsSync = false
            }
            syncedIndex = lastIndex
            let durable = hardStateFiles.durable
            if hardState.term != durable.term || hardState.vote != durable.vote {
                try hardStateFiles.write(hardState, durable: true)
            } else if hardState != hardStateFiles.written {
                try hardStateFiles.write(hardState, durable: false)
            }
        }
    }

    /// Writes staged bytes to the open segment (not yet durable).
    func writeStaged() throws {
        guard !staged.bytes.isEmpty, let openFile else { return }
        try openFile.write(all: staged.bytes, at: writtenSize)
        writtenSize += Int64(staged.bytes.count)
        staged.clear()
        segmentNeedsSync = true
    }

    /// Closes the current segment durably and stages the header of a new one.
    private func startSegment(firstIndex: UInt64) throws {
        if let openFile {
            // Recovery treats damage in any segment but the last as corruption,
            // so a segment must be whole on disk before the next one gets data.
            try writeStaged()
            if segmentNeedsSync { try openFile.syncData() }
            if directoryNeedsSync { try FileDescriptor.syncDirectory(directory) }
            segmentNeedsSync = false
            directoryNeedsSync = false
            syncedIndex = segments[segments.count - 1].lastIndex
            try openFile.close()
            self.openFile = nil
        }
        let name = LogSegmentFormat.fileName(firstIndex: firstIndex)
        openFile = try FileDescriptor.open(
            directory + "/" + name, .readWrite, options: [.create, .truncate], permissions: 0o600)
        segments.append(Segment(firstIndex: firstIndex, offsets: [], size: Int64(LogSegmentFormat.headerSize)))
        writtenSize = 0
        LogSegmentFormat.appendHeader(firstIndex: firstIndex, to: &staged)
        directoryNeedsSync = true
    }

    /// Removes entries `index...lastIndex` from disk, durably: later segments
    /// are unlinked (and the directory fsync'd) before the segment holding
    /// `index` is cut, so a crash cannot leave stale records behind a
    /// shortened log. Rare (leader changes), so the extra fsyncs are cheap.
    func truncateSuffix(from index: UInt64) throws {
        try writeStaged()
        guard let k = segments.lastIndex(where: { $0.firstIndex <= index }) else { return }
        if k < segments.count - 1 {
            try openFile?.close()
            openFile = nil
            for segment in segments[(k + 1)...].reversed() {
                try FileDescriptor.unlink(directory + "/" + segment.fileName)
            }
            segments.removeSubrange((k + 1)...)
            try FileDescriptor.syncDirectory(directory)
            directoryNeedsSync = false
            openFile = try FileDescriptor.open(directory + "/" + segments[k].fileName, .readWrite)
        }
        let keep = Int(index - segments[k].firstIndex)
        let cut = Int64(segments[k].offsets[keep])
        try openFile!.truncate(to: cut)
        try openFile!.syncData()
        segments[k].offsets.removeSubrange(keep...)
        segments[k].size = cut
        writtenSize = cut
        segmentNeedsSync = false
        lastIndex = index - 1
        syncedIndex = min(syncedIndex, lastIndex)
    }

    // MARK: reading

    /// Entries `range` read back from disk (for debugging, tests and tools;
    /// the Raft driver keeps its own copy in memory).
    public func entries(in range: ClosedRange<UInt64>) throws -> [RaftEntry] {
        guard range.lowerBound >= firstIndex, range.lowerBound >= 1 else {
            throw RaftStorageError.unavailable(range.lowerBound)
        }
        guard range.upperBound <= lastIndex, !segments.isEmpty else {
            throw RaftStorageError.unavailable(min(range.upperBound, lastIndex + 1))
        }
        return try guarded {
            try writeStaged()
            var result: [RaftEntry] = []
            result.reserveCapacity(Int(range.upperBound - range.lowerBound + 1))
            for segment in segments where segment.lastIndex >= range.lowerBound && segment.firstIndex <= range.upperBound
                && !segment.offsets.isEmpty {
                let from = Int(max(range.lowerBound, segment.firstIndex) - segment.firstIndex)
                let to = Int(min(range.upperBound, segment.lastIndex) - segment.firstIndex)
                let start = Int64(segment.offsets[from])
                let end = to + 1 < segment.offsets.count ? Int64(segment.offsets[to + 1]) : segment.size
                let fd = try FileDescriptor.open(directory + "/" + segment.fileName, .readOnly)
                let bytes = try fd.closeAfter { try fd.read(upToCount: Int(end - start), at: start) }
                for i in from...to {
                    let offset = Int(Int64(segment.offsets[i]) - start)
                    let expected = segment.firstIndex + UInt64(i)
                    guard case .valid = LogSegmentFormat.checkRecord(bytes, at: offset, expectedIndex: expected) else {
                        throw RaftStorageError.corrupt(
                            directory: directory, file: segment.fileName, offset: Int64(segment.offsets[i]),
                            reason: "record \(expected) no longer reads back")
                    }
                    result.append(LogSegmentFormat.decodeEntry(bytes, at: offset))
                }
            }
            return result
        }
    }

    /// The current snapshot read back from disk, for sending to a follower that lags behind the log.
    public func loadSnapshot() throws -> RaftSnapshot? {
        try guarded { try SnapshotFile.read(directory: directory) }
    }

    /// Names of the segment files, oldest first (for status output and tests).
    public var segmentFileNames: [String] { segments.map(\.fileName) }
}
