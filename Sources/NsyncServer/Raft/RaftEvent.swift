/// An input to the Raft core. The driver (Node, on the loop thread) turns
/// timer ticks, decoded peer frames, local proposals and storage completions
/// into events and steps them through `Raft.step`.
public enum RaftEvent: Sendable {
    /// One unit of logical time passed (nsyncd: every 50 ms).
    case tick
    /// A message from a peer.
    case message(RaftMessage)
    /// Replicate `data` as one log entry. `id` is chosen by the caller and unique
    /// on this node; exactly one outcome for it will appear in a later update.
    case propose(data: [UInt8], id: ProposalID)
    /// The driver made every update handed out so far durable, up to the one whose
    /// `persistedEvent` this is (entries up to `upTo`, which has term `term`).
    case persisted(upTo: UInt64, term: UInt64)
    /// The state machine's snapshot the driver was asked for (`wantsSnapshot`),
    /// already durable. The core compacts its log behind it.
    case snapshotCreated(RaftSnapshot)
}

/// Names one proposal; chosen by the proposer, unique per node.
public struct ProposalID: Hashable, Sendable, CustomStringConvertible {
    public var value: UInt64
    public init(_ value: UInt64) { self.value = value }
    public var description: String { "proposal#\(value)" }
}

/// What became of a proposal. Every proposal gets exactly one.
public enum ProposalOutcome: Equatable, Sendable {
    /// Committed as the entry at `index`; it is in this update's committed
    /// entries or an earlier one.
    case committed(index: UInt64)
    case failed(ProposalFailure)
}

/// Why a proposal did not (or may not have) become committed. Some reasons are
/// definite (the command will never be applied); the others mean "unknown": the
/// command may still be applied later, so the state machine must treat a retry
/// of it as possibly a duplicate (nsyncd's compare-and-set versions do).
public enum ProposalFailure: UInt8, Equatable, Sendable, CustomStringConvertible {
    /// No leader was known, so the proposal entered no log. Definite.
    case noLeader = 1
    /// A different entry was committed at the index it was given. Definite.
    case superseded = 2
    /// The leader holding it lost leadership and no outcome was learned before
    /// the proposal timeout. Unknown.
    case leadershipLost = 3
    /// No outcome within the proposal timeout. Unknown.
    case timedOut = 4
    /// A snapshot installed from the leader covered its index before the outcome
    /// was known. Unknown.
    case coveredBySnapshot = 5
    /// The data is larger than `maxAppendBytes`. Definite.
    case tooLarge = 6

    /// True when the proposal will certainly never be applied.
    public var isDefinite: Bool {
        switch self {
        case .noLeader, .superseded, .tooLarge: true
        case .leadershipLost, .timedOut, .coveredBySnapshot: false
        }
    }

    public var description: String {
        switch self {
        case .noLeader: "no leader is known (cluster electing or this node is cut off); retry shortly"
        case .superseded: "another entry was committed at its index; it was not applied"
        case .leadershipLost: "the leader lost leadership before it committed; it may still be applied"
        case .timedOut: "no outcome within the proposal timeout; it may still be applied"
        case .coveredBySnapshot: "a snapshot from the leader covered it; it may have been applied"
        case .tooLarge: "proposal larger than the max append size; split it into smaller batches"
        }
    }
}

/// One proposal's outcome, as reported in a `RaftUpdate`.
public struct ProposalResult: Equatable, Sendable {
    public var id: ProposalID
    public var outcome: ProposalOutcome
    public init(id: ProposalID, outcome: ProposalOutcome) {
        self.id = id
        self.outcome = outcome
    }
}

/// The role a node plays in its current term.
public enum RaftRole: UInt8, Sendable, CustomStringConvertible {
    case follower, preCandidate, candidate, leader
    public var description: String {
        switch self {
        case .follower: "follower"
        case .preCandidate: "pre-candidate"
        case .candidate: "candidate"
        case .leader: "leader"
        }
    }
}

/// The part of a node's state an operator watches (`nsyncd status`).
public struct RaftStatus: Equatable, Sendable {
    public var role: RaftRole
    public var leader: NodeName?
    public var term: UInt64
    public init(role: RaftRole, leader: NodeName?, term: UInt64) {
        self.role = role
        self.leader = leader
        self.term = term
    }
}
