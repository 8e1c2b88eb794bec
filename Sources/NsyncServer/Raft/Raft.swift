/// The Raft consensus core of one node: a deterministic value with no I/O.
/// Events (ticks, peer messages, proposals, storage completions) go in through
/// `step`; everything the node must do comes out as a `RaftUpdate` (what to
/// persist, what to send after that, what to apply, proposal outcomes).
/// No sockets, clocks, files, threads or hidden randomness: a seed in the
/// config and the ticks the driver steps are all the nondeterminism there is,
/// which is what lets the simulation tests replay thousands of clusters.
/// Confined to the loop thread (or to one test) because it is mutated in place.
///
/// Shape: cowsql's `raft_step(event) -> update` rather than etcd's
/// Step/Ready/Advance. `step(_:)` takes one event; `step(_ events:)` takes all
/// events of one loop iteration and returns a single update, which is how
/// proposals arriving together become one disk write and one append message
/// per follower. See `RaftUpdate` for the persistence and send rules.
///
/// Model: etcd's raft (pre-vote, check-quorum, probe/replicate/snapshot
/// progress, in-flight window, conflict-term back-off), the Raft paper for the
/// rules themselves. Files: Raft+Election (terms, votes, ticks),
/// Raft+Replication (append, commit), Raft+Snapshot (compaction, chunked
/// InstallSnapshot), Raft+Proposals (proposals and their outcomes).
public struct Raft: Sendable {
    public let config: RaftConfig
    /// Every member, sorted, self included.
    let members: [NodeName]
    /// The other members, sorted; `progress` and `votes` are indexed like this.
    let peers: [NodeName]
    /// Votes (or acknowledgements) needed for a decision: a majority of `members`.
    let quorum: Int

    // Persistent state (mirrored by HardState and the stored log).
    public internal(set) var term: UInt64
    public internal(set) var vote: NodeName?
    var log: RaftCoreLog
    public internal(set) var commitIndex: UInt64

    // Volatile state.
    /// Last entry handed out in `committedEntries` (or covered by the snapshot).
    public internal(set) var appliedIndex: UInt64
    /// The stored log agrees with `log` up to here (reported by `.persisted`).
    var persistedIndex: UInt64
    /// The latest snapshot: the log is compacted at or behind it, and a leader
    /// streams it to followers that need what was compacted.
    var snapshot: RaftSnapshot? {
        didSet { snapshotIndex = snapshot?.metadata.index ?? 0 }
    }
    /// Index of the latest snapshot (0 if none).
    public private(set) var snapshotIndex: UInt64 = 0
    public internal(set) var role: RaftRole = .follower
    public internal(set) var leader: NodeName?
    /// Ticks stepped so far: the clock of timeouts and proposal deadlines.
    var now: UInt64 = 0
    var electionElapsed = 0
    var heartbeatElapsed = 0
    var randomizedElectionTimeout = 0
    /// Pre-candidate and candidate: each peer's answer (nil: none yet).
    var votes: [Bool?]
    /// Leader only: replication state per peer.
    var progress: [RaftProgress]
    var proposals = RaftProposalTracker()
    /// Answers given to recently forwarded proposals, to answer duplicates alike.
    var forwards = RaftForwardedProposals()
    var random: RaftRandom
    /// Follower: the snapshot being received in chunks.
    var incomingSnapshot: (metadata: SnapshotMetadata, data: [UInt8])?
    /// When `wantsSnapshot` was last raised without an answer yet.
    var snapshotRequestedAt: UInt64?
    var bytesAppliedSinceSnapshot = 0

    /// What the current step has produced so far.
    var out = RaftUpdate()
    var reportedHardState: HardState
    var reportedStatus: RaftStatus

    /// Starts a node from what storage recovered (empty for a new node).
    public init(config: RaftConfig, recovered: RaftRecoveredState = RaftRecoveredState()) throws {
        try config.validate()
        self.config = config
        members = config.members
        peers = members.filter { $0 != config.name }
        quorum = members.count / 2 + 1

        let snapshotIndex = recovered.snapshot?.metadata.index ?? 0
        var log = RaftCoreLog(offset: snapshotIndex, offsetTerm: recovered.snapshot?.metadata.term ?? 0)
        var previousTerm = log.offsetTerm
        for entry in recovered.entries where entry.index > snapshotIndex {
            if log.entries.isEmpty && entry.index != snapshotIndex + 1 {
                throw RaftRecoveryError.gapAfterSnapshot(snapshotIndex: snapshotIndex, firstEntry: entry.index)
            }
            if entry.index != log.lastIndex + 1 {
                throw RaftRecoveryError.entriesNotContiguous(after: log.lastIndex, found: entry.index)
            }
            if entry.term < previousTerm { throw RaftRecoveryError.termsDecrease(at: entry.index) }
            previousTerm = entry.term
            log.append(entry)
        }
        var hardState = recovered.hardState
        // Entries (or a snapshot) can be durable while the hard state written
        // with them was lost in a torn tail. Their term was never voted in by a
        // message that left this node, so adopting it without a vote is safe.
        if hardState.term < log.lastTerm {
            hardState = HardState(term: log.lastTerm, vote: nil, commit: hardState.commit)
        }
        if hardState.commit > log.lastIndex {
            throw RaftRecoveryError.commitBeyondLog(commit: hardState.commit, lastIndex: log.lastIndex)
        }
        self.log = log
        term = hardState.term
        vote = hardState.vote
        commitIndex = max(hardState.commit, snapshotIndex)
        appliedIndex = snapshotIndex
        persistedIndex = log.lastIndex
        snapshot = recovered.snapshot
        self.snapshotIndex = snapshotIndex
        votes = Array(repeating: nil, count: peers.count)
        progress = []
        random = RaftRandom(seed: config.randomSeed)
        reportedHardState = HardState(term: term, vote: vote, commit: commitIndex)
        reportedStatus = RaftStatus(role: .follower, leader: nil, term: term)
        resetElectionTimer()
    }

    // MARK: stepping

    /// Feeds one event; returns what the driver must do about it.
    public mutating func step(_ event: RaftEvent) -> RaftUpdate {
        handle(event)
        return finishUpdate()
    }

    /// Feeds several events (say, everything one loop iteration received) and
    /// returns one update for all of them, so their writes and sends batch.
    public mutating func step<Events: Sequence>(_ events: Events) -> RaftUpdate where Events.Element == RaftEvent {
        for event in events { handle(event) }
        return finishUpdate()
    }

    /// What an operator sees: role, leader and term right now.
    public var status: RaftStatus { RaftStatus(role: role, leader: leader, term: term) }
    public var lastIndex: UInt64 { log.lastIndex }
    /// Proposals made here still waiting for their outcome.
    public var pendingProposals: Int { proposals.count }

    mutating func handle(_ event: RaftEvent) {
        switch event {
        case .tick: tick()
        case let .message(message): receive(message)
        case let .propose(data, id): propose(data, id: id)
        case let .persisted(index, term): persisted(upTo: index, term: term)
        case let .snapshotCreated(snapshot): snapshotCreated(snapshot)
        }
    }

    /// Closes the current step: queue appends for followers, hand out newly
    /// committed entries, report changed hard state and status.
    mutating func finishUpdate() -> RaftUpdate {
        if role == .leader {
            for slot in peers.indices { replicate(to: slot) }
        }
        applyCommitted()
        let hardState = HardState(term: term, vote: vote, commit: commitIndex)
        if hardState != reportedHardState {
            out.hardState = hardState
            reportedHardState = hardState
        }
        // Built from stored properties: in a debug build, calling a computed
        // property from a mutating method copies the whole value.
        let currentStatus = RaftStatus(role: role, leader: leader, term: term)
        if currentStatus != reportedStatus {
            out.status = currentStatus
            reportedStatus = currentStatus
        }
        requestSnapshotIfDue()
        let update = out
        out = RaftUpdate()
        return update
    }

    // MARK: helpers shared by the extensions

    static func slot(of name: NodeName, in peers: [NodeName]) -> Int? {
        for i in peers.indices where peers[i] == name { return i }
        return nil
    }

    mutating func send(_ kind: RaftMessage.Kind, to peer: NodeName, term messageTerm: UInt64? = nil) {
        out.messages.append(RaftMessage(from: config.name, to: peer, term: messageTerm ?? term, kind: kind))
    }

    /// Records entries written to the log in this step, merging with earlier
    /// writes of the same step so storage sees one overwrite point.
    mutating func recordWrite<C: Collection>(_ entries: C) where C.Element == RaftEntry {
        guard let first = entries.first else { return }
        if let pendingFirst = out.entries.first {
            if first.index <= pendingFirst.index {
                out.entries.removeAll(keepingCapacity: true)
            } else if let pendingLast = out.entries.last, first.index <= pendingLast.index {
                out.entries.removeLast(Int(pendingLast.index - first.index + 1))
            }
        }
        out.entries.append(contentsOf: entries)
    }

    mutating func report(_ id: ProposalID, _ outcome: ProposalOutcome) {
        out.outcomes.append(ProposalResult(id: id, outcome: outcome))
    }

    mutating func resetElectionTimer() {
        electionElapsed = 0
        randomizedElectionTimeout = random.next(in: config.electionTicks)
    }
}
