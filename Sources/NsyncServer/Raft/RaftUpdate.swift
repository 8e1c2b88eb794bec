/// Everything one `Raft.step` asks the driver to do. Produced on the loop
/// thread; handed whole to the persistence work and back.
///
/// The contract, in order:
/// 1. Persist: if `snapshot` is set, store it and drop the whole stored log
///    (the snapshot replaces it); then delete stored entries with index
///    `>= entries.first.index` and append `entries`; then store `hardState`.
///    Then drop stored entries up to `compactedThrough` (a durable snapshot
///    covers them). Updates are persisted in the order they were returned
///    (FIFO), compaction included: an earlier write may still be storing
///    entries that a later compaction point covers.
/// 2. Send `messages` only once this update's persistence, and that of every
///    earlier update, is durable: they promise votes and log contents that
///    must survive a crash. An update with nothing to persist still waits
///    behind earlier ones. Messages may be dropped or reordered (the core
///    retries); they must never be sent early.
/// 3. When the update is durable, step `persistedEvent` (if any) back in: it is
///    how a leader counts its own copy toward the commit quorum. A group commit
///    may report only the last of several durable updates.
/// 4. Apply: restore the state machine from `snapshot` (if set), then apply
///    `committedEntries` in order (`.noop` entries carry nothing). This may
///    happen before persistence: those entries are committed on a majority.
/// 5. Hand `outcomes` to the proposers, show `status`, and if `wantsSnapshot`
///    serialize the state machine as of the last entry applied, make it
///    durable and step `.snapshotCreated`.
public struct RaftUpdate: Sendable {
    /// Term, vote and commit to persist; nil when unchanged.
    public var hardState: HardState?
    /// A snapshot received from the leader: persist it (replacing the log) and
    /// restore the state machine from it.
    public var snapshot: RaftSnapshot?
    /// Entries to store; the first one's index is where the stored log is
    /// overwritten (an append when it is just past the stored tail).
    public var entries: [RaftEntry] = []
    /// Stored entries up to this index may be discarded.
    public var compactedThrough: UInt64?
    /// Messages to send once this update is durable (see above).
    public var messages: [RaftMessage] = []
    /// Committed entries to apply to the state machine, in log order.
    public var committedEntries: [RaftEntry] = []
    /// Proposals that got their outcome in this step.
    public var outcomes: [ProposalResult] = []
    /// Role, leader or term after this step, when any of them changed.
    public var status: RaftStatus?
    /// The log grew past the snapshot threshold: please take a snapshot.
    public var wantsSnapshot = false

    public init() {}

    /// The event to step once this update is durable, or nil if nothing in it
    /// needs acknowledging.
    public var persistedEvent: RaftEvent? {
        if let last = entries.last { return .persisted(upTo: last.index, term: last.term) }
        if let snapshot { return .persisted(upTo: snapshot.metadata.index, term: snapshot.metadata.term) }
        return nil
    }

    /// True when the update writes anything to disk.
    public var needsPersistence: Bool {
        hardState != nil || snapshot != nil || !entries.isEmpty
    }

    /// True when the update asks nothing of the driver.
    public var isEmpty: Bool {
        !needsPersistence && compactedThrough == nil && messages.isEmpty && committedEntries.isEmpty
            && outcomes.isEmpty && status == nil && !wantsSnapshot
    }
}

/// What the driver recovered from storage at start-up.
public struct RaftRecoveredState: Sendable {
    public var hardState: HardState
    /// The latest durable snapshot, if any (its data is kept to send to followers).
    public var snapshot: RaftSnapshot?
    /// Durable entries in index order. Entries at or below the snapshot's index
    /// are ignored; the rest must follow it without a gap.
    public var entries: [RaftEntry]

    public init(hardState: HardState = HardState(), snapshot: RaftSnapshot? = nil, entries: [RaftEntry] = []) {
        self.hardState = hardState
        self.snapshot = snapshot
        self.entries = entries
    }
}

/// Why recovered storage state cannot be the start of a Raft node: storage is
/// corrupt or was written by a buggy version. Restoring from a peer (wipe the
/// state directory's raft files and restart) is the way out.
public enum RaftRecoveryError: Error, Equatable, CustomStringConvertible, Sendable {
    case gapAfterSnapshot(snapshotIndex: UInt64, firstEntry: UInt64)
    case entriesNotContiguous(after: UInt64, found: UInt64)
    case termsDecrease(at: UInt64)
    case commitBeyondLog(commit: UInt64, lastIndex: UInt64)

    public var description: String {
        let fix = "the raft state in .nsync/ is inconsistent; move it aside and restart to resync from the cluster"
        switch self {
        case let .gapAfterSnapshot(s, f): return "log starts at \(f) but the snapshot ends at \(s): \(fix)"
        case let .entriesNotContiguous(a, f): return "log entry \(f) follows entry \(a): \(fix)"
        case let .termsDecrease(i): return "log terms decrease at index \(i): \(fix)"
        case let .commitBeyondLog(c, l): return "commit index \(c) is past the last log entry \(l): \(fix)"
        }
    }
}
