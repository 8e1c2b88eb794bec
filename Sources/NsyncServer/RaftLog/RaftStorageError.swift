/// Why Raft storage refused to open or to do what was asked. Each
/// description names the file and tells the operator what to do. A value;
/// any thread.
public enum RaftStorageError: Error, Equatable, CustomStringConvertible, Sendable {
    /// Damage that a crash cannot explain (inside a record followed by valid
    /// records, in a segment that was complete and synced, in a snapshot or
    /// in both metadata files): the node must not start on it.
    case corrupt(directory: String, file: String, offset: Int64, reason: String)
    /// The segments do not form one contiguous log (a file is missing or foreign).
    case gap(directory: String, reason: String)
    /// The caller broke the append contract (not contiguous, or below the
    /// snapshot): a bug in the Raft driver, not on disk.
    case invalidAppend(String)
    /// The on-disk format is newer than this binary understands.
    case unsupportedVersion(file: String, version: UInt32)
    /// A read asked for entries the log no longer (or never) held.
    case unavailable(UInt64)
    /// The storage was used after `close()` (a bug in the caller).
    case closed(directory: String)

    public var description: String {
        switch self {
        case let .corrupt(directory, file, offset, reason):
            return "the Raft state at \(directory)/\(file) is corrupt at offset \(offset) (\(reason)); "
                + "this is not a torn write from a crash, so the node refuses to start rather than "
                + "risk acknowledging entries it lost. To recover, stop nsyncd, move \(directory) "
                + "aside (keep it for diagnosis) and restart: the node rejoins empty and catches up "
                + "from the cluster. Do this on one node at a time, only while the other members "
                + "are healthy, and keep them running until this node has caught up (its commit in "
                + "`nsyncd status` at the leader's): until then it votes with an empty log, and "
                + "losing another member meanwhile can lose committed changes."
        case let .gap(directory, reason):
            return "the Raft log at \(directory) is incomplete (\(reason)); a segment was removed or "
                + "a foreign file was copied in. Stop nsyncd, move \(directory) aside and restart: "
                + "the node rejoins empty and catches up from the cluster (one node at a time, "
                + "with the others healthy and running until it has caught up)."
        case let .invalidAppend(reason):
            return "invalid Raft log append (a bug in the Raft driver): \(reason)"
        case let .unsupportedVersion(file, version):
            return "\(file) has on-disk format version \(version), newer than this nsyncd understands; "
                + "run the newer nsyncd version that wrote it"
        case let .closed(directory):
            return "Raft storage for \(directory) used after it was closed (a bug in the caller)"
        case let .unavailable(index):
            return "Raft log entry \(index) is not in the log (compacted into a snapshot, or never written)"
        }
    }
}
