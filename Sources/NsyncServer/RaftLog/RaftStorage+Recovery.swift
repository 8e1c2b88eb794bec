/// Opening Raft storage: reading what a previous run (or crash) left, cutting
/// torn writes and refusing real corruption. Runs once, on the thread that
/// opens the storage.
///
/// What a crash can leave, and what recovery does with it:
/// - damage at the end of the last segment that no later record and no
///   commit index vouches for: a torn tail, cut (and noted);
/// - a last segment whose header never reached the disk: removed (noted);
/// - a torn metadata file: the other one is used (noted);
/// - `snapshot.tmp`: removed, the previous snapshot stands (noted);
/// - segments an interrupted snapshot save meant to delete: deleted (noted).
/// Anything else — damage before valid synced records, in a closed segment,
/// in the snapshot or in both metadata files, or a missing segment — throws
/// `RaftStorageError` and the node does not start.
extension RaftStorage {
    /// The pieces `open` hands to the initializer.
    struct Recovery {
        var segments: [Segment]
        var openFile: FileDescriptor?
        var hardStateFiles: HardStateFiles
        var state: RecoveredState
    }

    /// Opens (creating if needed) the storage in `directory` and returns what
    /// it holds. Takes an exclusive lock on `directory/lock` for as long as
    /// the storage is open, so a second process on the same directory fails
    /// here with `LockFile.Failure.held`.
    public static func open(directory: String, options: Options = Options()) throws -> (RaftStorage, RecoveredState) {
        let existed = FileDescriptor.isDirectory(directory)
        try FileDescriptor.makeDirectories(directory, permissions: 0o700)
        if !existed, let slash = directory.lastIndex(of: "/"), slash != directory.startIndex {
            try FileDescriptor.syncDirectory(String(directory[..<slash]))
        }
        let lock = try LockFile(path: directory + "/lock")
        let recovery = try recover(directory: directory)
        let storage = RaftStorage(directory: directory, options: options, lock: lock, recovered: recovery)
        return (storage, recovery.state)
    }

    static func recover(directory: String) throws -> Recovery {
        var notes: [String] = []
        // Repairs are only planned while reading and carried out once every
        // check has passed, so a refusal leaves the evidence untouched.
        var removals: [String] = []
        var cut: (path: String, size: Int64)?
        let names = try FileDescriptor.listDirectory(directory)
        if names.contains(SnapshotFile.temporaryName) {
            removals.append(SnapshotFile.temporaryName)
            notes.append("removed \(SnapshotFile.temporaryName) left by a crash during a snapshot save; "
                + "the previous snapshot stands")
        }
        let snapshot = try SnapshotFile.read(directory: directory)
        let snapshotIndex = snapshot?.metadata.index ?? 0
        let segmentStarts = names.compactMap(LogSegmentFormat.firstIndex(fromFileName:)).sorted()
        let loaded = try HardStateFiles.open(directory: directory, mayCreate: segmentStarts.isEmpty && snapshot == nil)
        notes += loaded.notes
        var hardState = loaded.state
        var hardStateFiles = loaded.files
        var openFile: FileDescriptor?
        var succeeded = false
        defer {
            if !succeeded {
                hardStateFiles.close()
                try? openFile?.close()
            }
        }
        // Entries up to here were durable before the crash: committed ones were
        // synced before the commit index was written, and a snapshot covers only
        // committed entries. Damage at or below it is never a torn write.
        let durableIndex = max(hardState.commit, snapshotIndex)

        func corrupt(_ file: String, _ offset: Int, _ reason: String) -> RaftStorageError {
            .corrupt(directory: directory, file: file, offset: Int64(offset), reason: reason)
        }

        var segments: [Segment] = []
        var entries: [RaftEntry] = []
        var termAtSnapshot: UInt64?
        for (position, first) in segmentStarts.enumerated() {
            let isLast = position == segmentStarts.count - 1
            let name = LogSegmentFormat.fileName(firstIndex: first)
            let path = directory + "/" + name
            let bytes = try readFile(path)

            switch LogSegmentFormat.checkHeader(bytes) {
            case let .newerVersion(version):
                throw RaftStorageError.unsupportedVersion(file: path, version: version)
            case let .damaged(reason):
                // A new segment's header goes out with its first records; if the
                // header is torn, so is all of it, unless a record proves otherwise.
                guard isLast, first > durableIndex,
                      LogSegmentFormat.recordVouchingFor(first, in: bytes, after: 0) == nil else {
                    throw corrupt(name, 0, "segment header: \(reason)")
                }
                removals.append(name)
                notes.append("removed torn segment \(name) (\(reason)): it was being created when the node stopped")
                continue
            case let .valid(headerFirst):
                guard headerFirst == first else {
                    throw corrupt(name, 12, "header says first index \(headerFirst) but the file name says \(first)")
                }
            }

            let scan = LogSegmentFormat.scan(bytes, firstIndex: first)
            if let damage = scan.damage {
                let damagedIndex = first + UInt64(scan.offsets.count)
                guard isLast else {
                    throw corrupt(name, damage.offset, "\(damage.reason) at entry \(damagedIndex), "
                        + "in a segment that was complete and synced before the next one began")
                }
                if damagedIndex <= durableIndex {
                    throw corrupt(name, damage.offset, "\(damage.reason) at entry \(damagedIndex), "
                        + "which was committed (up to \(durableIndex)) and so synced before the crash")
                }
                if let proof = LogSegmentFormat.recordVouchingFor(damagedIndex, in: bytes, after: damage.offset) {
                    throw corrupt(name, damage.offset, "\(damage.reason) at entry \(damagedIndex), "
                        + "yet the valid record at offset \(proof) was written after entry \(damagedIndex) was synced")
                }
                cut = (path, Int64(damage.offset))
                notes.append("cut torn tail of \(name) at offset \(damage.offset) (\(damage.reason)): "
                    + "dropped \(bytes.count - damage.offset) bytes never synced; the log now ends at index \(scan.lastIndex)")
            }
            if let previous = segments.last, first != previous.lastIndex + 1 {
                throw RaftStorageError.gap(
                    directory: directory,
                    reason: "\(name) starts at index \(first) but \(previous.fileName) ends at \(previous.lastIndex)")
            }
            for (k, offset) in scan.offsets.enumerated() {
                let index = first + UInt64(k)
                if index == snapshotIndex {
                    termAtSnapshot = bytes.loadBigEndian(UInt64.self, at: Int(offset) + LogSegmentFormat.recordHeaderSize)
                } else if index > snapshotIndex {
                    entries.append(LogSegmentFormat.decodeEntry(bytes, at: Int(offset)))
                }
            }
            segments.append(Segment(firstIndex: first, offsets: scan.offsets, size: Int64(scan.validEnd)))
        }

        if let first = segments.first, first.firstIndex > snapshotIndex + 1 {
            throw RaftStorageError.gap(
                directory: directory,
                reason: "the log starts at index \(first.firstIndex) but "
                    + (snapshot == nil ? "there is no snapshot, so it must start at 1"
                        : "the snapshot ends at index \(snapshotIndex)"))
        }
        if let snapshot, let lastSegment = segments.last {
            var discard: String?
            if lastSegment.lastIndex < snapshotIndex {
                discard = "the log ends at \(lastSegment.lastIndex), before the snapshot's index \(snapshotIndex)"
            } else if let term = termAtSnapshot, term != snapshot.metadata.term {
                discard = "the log has term \(term) at index \(snapshotIndex), the snapshot term \(snapshot.metadata.term)"
            }
            // Finish what an interrupted `saveSnapshot` started.
            let doomed = discard != nil ? segments[...] : segments.dropLast().filter { $0.lastIndex <= snapshotIndex }[...]
            removals += doomed.map(\.fileName)
            if let discard {
                notes.append("discarded the log after an interrupted snapshot install (\(discard))")
                segments = []
                entries = []
            } else if !doomed.isEmpty {
                notes.append("removed \(doomed.count) segment(s) covered by the snapshot at index \(snapshotIndex) "
                    + "(an interrupted compaction)")
                segments.removeFirst(doomed.count)
            }
        }

        if let cut {
            let fd = try FileDescriptor.open(cut.path, .readWrite)
            try fd.closeAfter { try fd.truncate(to: cut.size) }
        }
        for name in removals { try FileDescriptor.unlink(directory + "/" + name) }
        if let last = segments.last {
            let fd = try FileDescriptor.open(directory + "/" + last.fileName, .readWrite)
            // What survived a process crash may still be only in the page cache;
            // make it durable so every recovered entry counts as synced.
            try fd.syncData()
            openFile = fd
        }
        // Always: a segment created just before a process crash may exist
        // only in the cache, and its entries now count as synced.
        try FileDescriptor.syncDirectory(directory)

        let logEnd = max(snapshotIndex, segments.last?.lastIndex ?? 0)
        hardState.commit = max(hardState.commit, snapshotIndex)
        if hardState.commit > logEnd {
            notes.append("commit index \(hardState.commit) was beyond the recovered log (ends at \(logEnd)); "
                + "lowered it, the leader will tell it again")
            hardState.commit = logEnd
        }
        let state = RecoveredState(hardState: hardState, snapshot: snapshot, entries: entries, notes: notes)
        succeeded = true
        return Recovery(segments: segments, openFile: openFile, hardStateFiles: hardStateFiles, state: state)
    }

    private static func readFile(_ path: String) throws -> [UInt8] {
        let fd = try FileDescriptor.open(path, .readOnly)
        return try fd.closeAfter { try fd.readAll() }
    }
}
