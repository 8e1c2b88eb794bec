/// Static settings of one Raft node: who it is, who its peers are, and the
/// timing and size limits of the protocol. A plain value, built once by the
/// Node from the command line and handed to `Raft.init`; usable from any thread.
///
/// Time is counted in ticks: the driver steps `.tick` on a fixed interval
/// (nsyncd: every 50 ms), so `electionTicks: 6...12` means 300-600 ms.
public struct RaftConfig: Sendable {
    /// This node's `--name` (the name its certificate proves).
    public var name: NodeName
    /// The other members (`--cluster`); this node's own name is ignored if listed.
    /// Membership is static: the initial configuration is `name` plus `peers`.
    public var peers: [NodeName]
    /// Ticks between heartbeats a leader sends to every follower.
    public var heartbeatTicks: Int = 1
    /// Range the randomized election timeout is drawn from, in ticks. Its lower
    /// bound is also the check-quorum period and the leader lease of pre-vote.
    public var electionTicks: ClosedRange<Int> = 6...12
    /// Run a pre-vote round before a real election, so a node that was cut off
    /// cannot disrupt a stable leader by bumping the term when it comes back.
    public var preVote: Bool = true
    /// A leader that has not heard from a majority within one election timeout
    /// steps down, and followers that hear from a leader ignore vote requests.
    public var checkQuorum: Bool = true
    /// Append messages a leader keeps in flight per follower before waiting for acks.
    public var maxInflightAppends: Int = 8
    /// Soft cap on entry bytes per append message (a single larger entry still goes
    /// alone). Also the largest proposal accepted.
    public var maxAppendBytes: Int = 1 << 20
    /// Ask the state machine for a snapshot once this many entries were applied
    /// since the last one...
    public var snapshotThresholdEntries: UInt64 = 10_000
    /// ...or once this many bytes of entry data were applied since the last one.
    public var snapshotThresholdBytes: Int = 64 << 20
    /// Entries kept behind a new snapshot so a follower lagging a little catches up
    /// from the log instead of receiving the whole snapshot.
    public var compactionTrailingEntries: UInt64 = 1_000
    /// Ask again for a snapshot if the driver has not delivered one after this many ticks.
    public var snapshotRetryTicks: Int = 200
    /// Bytes of snapshot data per InstallSnapshot message.
    public var snapshotChunkBytes: Int = 1 << 20
    /// A proposal without an outcome after this many ticks fails with
    /// `.timedOut` (or `.leadershipLost`), so callers never wait forever.
    public var proposalTimeoutTicks: Int = 100
    /// Seed of the randomized election timeouts. The driver passes a random
    /// value; tests pass a fixed one so a run replays exactly.
    public var randomSeed: UInt64 = 0

    public init(name: NodeName, peers: [NodeName]) {
        self.name = name
        self.peers = peers
    }

    /// Every member, sorted, self included.
    var members: [NodeName] {
        Array(Set(peers + [name])).sorted()
    }

    /// Throws a description an operator can act on when a setting cannot work.
    public func validate() throws {
        if name.isEmpty { throw RaftConfigError.emptyName }
        if name.utf8.count > RaftMessage.maxNameBytes {
            throw RaftConfigError.invalid("node name '\(name.prefix(40))...' is longer than \(RaftMessage.maxNameBytes) bytes")
        }
        var seen = Set<NodeName>()
        for peer in peers where peer != name {
            if peer.isEmpty { throw RaftConfigError.invalid("the --cluster list contains an empty name") }
            if peer.utf8.count > RaftMessage.maxNameBytes {
                throw RaftConfigError.invalid("peer name '\(peer.prefix(40))...' is longer than \(RaftMessage.maxNameBytes) bytes")
            }
            if !seen.insert(peer).inserted { throw RaftConfigError.duplicatePeer(peer) }
        }
        if heartbeatTicks < 1 { throw RaftConfigError.invalid("heartbeat interval must be at least 1 tick") }
        if electionTicks.lowerBound <= heartbeatTicks {
            throw RaftConfigError.invalid(
                "election timeout minimum (\(electionTicks.lowerBound) ticks) must exceed the heartbeat interval (\(heartbeatTicks) ticks), or followers start elections under a healthy leader")
        }
        if maxInflightAppends < 1 { throw RaftConfigError.invalid("max in-flight appends must be at least 1") }
        if maxAppendBytes < 1 { throw RaftConfigError.invalid("max append bytes must be at least 1") }
        if snapshotChunkBytes < 1 { throw RaftConfigError.invalid("snapshot chunk size must be at least 1 byte") }
        if snapshotChunkBytes > RaftMessage.maxDataBytes {
            throw RaftConfigError.invalid("snapshot chunk size must be at most \(RaftMessage.maxDataBytes) bytes")
        }
        if maxAppendBytes > RaftMessage.maxDataBytes {
            throw RaftConfigError.invalid("max append bytes must be at most \(RaftMessage.maxDataBytes) bytes")
        }
        if snapshotThresholdEntries < 1 { throw RaftConfigError.invalid("snapshot threshold must be at least 1 entry") }
        if proposalTimeoutTicks < 1 { throw RaftConfigError.invalid("proposal timeout must be at least 1 tick") }
        if snapshotRetryTicks < 1 { throw RaftConfigError.invalid("snapshot retry interval must be at least 1 tick") }
    }
}

/// Why a `RaftConfig` was refused.
public enum RaftConfigError: Error, Equatable, CustomStringConvertible, Sendable {
    case emptyName
    case duplicatePeer(NodeName)
    case invalid(String)

    public var description: String {
        switch self {
        case .emptyName: "this node has no name: pass --name"
        case let .duplicatePeer(peer): "peer '\(peer)' is listed twice in --cluster: list each member once"
        case let .invalid(why): "invalid Raft configuration: \(why)"
        }
    }
}
