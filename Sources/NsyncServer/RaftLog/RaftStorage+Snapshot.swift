/// Saving a snapshot and compacting the log behind it. Same thread rules as
/// `RaftStorage`: one call at a time, from the thread pool.
extension RaftStorage {
    /// Index of the current snapshot, 0 when there is none.
    public var snapshotIndex: UInt64 { snapshotMetadata?.index ?? 0 }

    /// Makes `snapshot` the durable snapshot, then drops the log it covers.
    ///
    /// The snapshot is durable (temporary file, fsync, rename, directory
    /// fsync) before any segment is deleted, so a crash in between leaves
    /// both and recovery finishes the job. If the log holds the snapshot's
    /// last entry with the same term, entries after it are kept (a local
    /// compaction) and only segments entirely at or below its index go;
    /// otherwise (a leader's snapshot beyond or in conflict with this log)
    /// the whole log is discarded and the next append starts right after
    /// the snapshot. Durable when it returns.
    public func saveSnapshot(_ snapshot: RaftSnapshot) throws {
        let index = snapshot.metadata.index
        guard index >= snapshotIndex else {
            throw RaftStorageError.invalidAppend("snapshot at \(index) is older than the current one at \(snapshotIndex)")
        }
        try guarded {
            try writeStaged()
            try SnapshotFile.write(snapshot, directory: directory)
            snapshotMetadata = snapshot.metadata

            let keepsLog = try index < lastIndex && (index < firstIndex || term(at: index) == snapshot.metadata.term)
            let doomed = keepsLog
                ? segments.dropLast().filter { $0.lastIndex <= index }.count
                : segments.count
            if !keepsLog {
                try openFile?.close()
                openFile = nil
                staged.clear()
                writtenSize = 0
                segmentNeedsSync = false
            }
            // Order matters if a crash stops this loop: compaction removes the
            // oldest first, so what remains is contiguous; a discard removes
            // the newest first, so what remains still holds (or ends before)
            // the snapshot's index and recovery recognises it as discarded.
            let victims = segments.prefix(doomed)
            for segment in keepsLog ? Array(victims) : victims.reversed() {
                try FileDescriptor.unlink(directory + "/" + segment.fileName)
            }
            segments.removeFirst(doomed)
            if doomed > 0 {
                // Unlinks made durable now, so a crash cannot resurrect a
                // discarded log next to a new segment starting after the snapshot.
                try FileDescriptor.syncDirectory(directory)
                directoryNeedsSync = false
            }
            firstIndex = index + 1
            if !keepsLog {
                lastIndex = index
                syncedIndex = index
            }
        }
    }

    /// The term of the entry at `index`, read from disk (`index` must be in the log).
    func term(at index: UInt64) throws -> UInt64 {
        try entries(in: index...index)[0].term
    }
}
