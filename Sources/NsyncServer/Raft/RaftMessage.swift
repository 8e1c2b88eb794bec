/// One message between two Raft nodes. Built by the core on the loop thread,
/// encoded into a frame by the driver (`RaftMessage+Codec.swift`).
public struct RaftMessage: Equatable, Sendable {
    public var from: NodeName
    public var to: NodeName
    /// The sender's term (for a pre-vote and a granted pre-vote answer: the
    /// term the sender would campaign in).
    public var term: UInt64
    public var kind: Kind

    public init(from: NodeName, to: NodeName, term: UInt64, kind: Kind) {
        self.from = from
        self.to = to
        self.term = term
        self.kind = kind
    }

    /// The message kinds of the protocol (Raft paper plus pre-vote, heartbeats,
    /// chunked snapshots and proposal forwarding).
    public enum Kind: Equatable, Sendable {
        case preVote(lastIndex: UInt64, lastTerm: UInt64)
        case preVoteResponse(granted: Bool)
        case vote(lastIndex: UInt64, lastTerm: UInt64)
        case voteResponse(granted: Bool)
        /// Entries after `prevIndex`, which must hold `prevTerm` on the follower.
        case append(prevIndex: UInt64, prevTerm: UInt64, entries: [RaftEntry], commit: UInt64)
        case appendResponse(AppendResult)
        /// `commit` is the leader's commit capped at what the follower is known to hold.
        case heartbeat(commit: UInt64)
        case heartbeatResponse
        case installSnapshot(SnapshotChunk)
        /// The follower holds `nextOffset` bytes of the snapshot ending at `index`/`term`.
        case installSnapshotResponse(index: UInt64, term: UInt64, nextOffset: UInt64)
        /// A follower forwards a local proposal to the leader.
        case propose(id: ProposalID, data: [UInt8])
        case proposeResponse(id: ProposalID, result: ForwardResult)
    }

    /// Longest node name on the wire.
    public static let maxNameBytes = 255
    /// Most bytes of one entry's data or one snapshot chunk on the wire.
    public static let maxDataBytes = 64 << 20
    /// Most entries in one append message.
    public static let maxEntries = 1 << 20
    /// Most members in snapshot metadata.
    public static let maxMembers = 1024
}

/// A follower's answer to an append.
public enum AppendResult: Equatable, Sendable {
    /// The follower's log matches the leader's up to `matchIndex`.
    case accepted(matchIndex: UInt64)
    /// The follower lacks `rejectedIndex` with the expected term. `hintIndex` is
    /// the last index at or below it whose term is at most the expected term,
    /// `hintTerm` that entry's term (0: unknown), so the leader can skip a whole
    /// conflicting term in one round trip.
    case rejected(rejectedIndex: UInt64, hintIndex: UInt64, hintTerm: UInt64)
}

/// One piece of a snapshot the leader streams to a lagging follower.
public struct SnapshotChunk: Equatable, Sendable {
    public var metadata: SnapshotMetadata
    /// Where `data` starts within the snapshot.
    public var offset: UInt64
    public var data: [UInt8]
    /// True on the last chunk: the follower installs the snapshot.
    public var done: Bool

    public init(metadata: SnapshotMetadata, offset: UInt64, data: [UInt8], done: Bool) {
        self.metadata = metadata
        self.offset = offset
        self.data = data
        self.done = done
    }
}

/// The leader's answer to a forwarded proposal.
public enum ForwardResult: Equatable, Sendable {
    /// Appended at `index` in the leader's `term`; committed once an entry with
    /// that index and term is applied.
    case appended(index: UInt64, term: UInt64)
    case failed(ProposalFailure)
}
