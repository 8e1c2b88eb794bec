/// Values shared by the Raft core (Raft/) and its durable storage (RaftLog/).
/// Plain values: no I/O, usable from any thread.

/// A member of the cluster, named by its `--name` (proved by its certificate).
public typealias NodeName = String

/// One entry of the replicated log.
public struct RaftEntry: Equatable, Sendable {
    /// What an entry carries: a state-machine command, or the no-op a new leader commits.
    public enum Kind: UInt8, Sendable {
        case command = 0
        case noop = 1
    }

    public var term: UInt64
    public var index: UInt64
    public var kind: Kind
    public var data: [UInt8]

    public init(term: UInt64, index: UInt64, kind: Kind = .command, data: [UInt8] = []) {
        self.term = term
        self.index = index
        self.kind = kind
        self.data = data
    }
}

/// The state that must be on disk before a message depending on it is sent.
public struct HardState: Equatable, Sendable {
    public var term: UInt64
    public var vote: NodeName?
    public var commit: UInt64

    public init(term: UInt64 = 0, vote: NodeName? = nil, commit: UInt64 = 0) {
        self.term = term
        self.vote = vote
        self.commit = commit
    }
}

/// Describes the last log position a snapshot covers and the membership then.
public struct SnapshotMetadata: Equatable, Sendable {
    public var index: UInt64
    public var term: UInt64
    public var members: [NodeName]

    public init(index: UInt64 = 0, term: UInt64 = 0, members: [NodeName] = []) {
        self.index = index
        self.term = term
        self.members = members
    }
}

/// A state-machine snapshot: its position and the serialized state.
public struct RaftSnapshot: Equatable, Sendable {
    public var metadata: SnapshotMetadata
    public var data: [UInt8]

    public init(metadata: SnapshotMetadata, data: [UInt8]) {
        self.metadata = metadata
        self.data = data
    }
}
