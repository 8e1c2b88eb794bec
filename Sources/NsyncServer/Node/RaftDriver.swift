import Logging

/// Runs the pure Raft core on the event loop: ticks from a timer, messages
/// from the raft channels, and durable storage on the thread pool with group
/// commit (every update that piles up while one fsync runs goes into the
/// next). Follows the contract of `RaftUpdate`: messages leave only after
/// what they promise is durable. Loop thread only; `storage` is touched only
/// by the one persistence job in flight.
final class RaftDriver {
    /// What the driver needs from the node that owns it.
    struct Hooks {
        /// Send these messages to their `to` peers (drops are fine: Raft retries).
        var send: ([RaftMessage]) -> Void
        /// Replace the state machine with a snapshot's data.
        var restore: (RaftSnapshot) -> Void
        /// Apply committed entries in order.
        var apply: ([RaftEntry]) -> Void
        /// The state machine as of the last applied entry, frozen now (on the
        /// loop), serialized by the returned closure on the thread pool.
        var snapshotEncoder: () -> () -> [UInt8]
        /// Role, leader or term changed.
        var statusChanged: (RaftStatus) -> Void
        /// Storage failed: the node cannot go on safely.
        var fatal: (String) -> Void
    }

    private(set) var raft: Raft
    private let storage: RaftStorage
    private let loop: EventLoop
    private let hooks: Hooks
    private let logger: Logger
    private var tickTimer: LoopTimer?

    /// Updates waiting to be made durable, in order.
    private var queue: [PendingWrite] = []
    private var persisting = false
    private var stopped = false
    /// Proposal ids must not repeat across restarts either: a leader
    /// remembers its answers to forwarded ids and would answer a reused id
    /// with an old entry's outcome. A random start makes a clash negligible.
    private var nextProposal = UInt64.random(in: 1...(UInt64.max >> 1))
    private var waiters: [ProposalID: (ProposalOutcome) -> Void] = [:]
    /// Index and term of the last entry applied (what a snapshot covers).
    private var appliedIndex: UInt64
    private var appliedTerm: UInt64
    private var snapshotInFlight = false
    /// Batches made durable and fsyncs done (for benchmarks and status).
    private(set) var fsyncCount = 0
    private(set) var entriesPersisted = 0
    /// Batches that appended entries: each cost one fdatasync of the log.
    /// `fsyncCount` also counts batches that only moved the commit index,
    /// which RaftStorage writes without an fsync.
    private(set) var logSyncCount = 0

    private struct PendingWrite {
        var update: RaftUpdate
        var snapshotToSave: RaftSnapshot?
    }

    init(raft: Raft, storage: RaftStorage, recoveredSnapshot: RaftSnapshot?, loop: EventLoop,
         hooks: Hooks, logger: Logger) {
        self.raft = raft
        self.storage = storage
        self.loop = loop
        self.hooks = hooks
        self.logger = logger
        appliedIndex = recoveredSnapshot?.metadata.index ?? 0
        appliedTerm = recoveredSnapshot?.metadata.term ?? 0
    }

    /// Starts ticking every `tickMilliseconds`.
    func start(tickMilliseconds: Int) {
        let timer = LoopTimer(loop: loop)
        timer.start(after: UInt64(tickMilliseconds), repeating: UInt64(tickMilliseconds)) { [unowned self] in
            step(.tick)
        }
        tickTimer = timer
        // Entries committed before a restart are applied again from the log.
        step([])
    }

    /// Stops ticking; a persistence job in flight still finishes.
    func stop() {
        stopped = true
        tickTimer?.close()
        tickTimer = nil
        for (_, waiter) in waiters { waiter(.failed(.leadershipLost)) }
        waiters.removeAll()
    }

    var isIdle: Bool { !persisting && queue.isEmpty }

    func receive(_ message: RaftMessage) {
        step(.message(message))
    }

    /// Proposes `data` as one entry; `completion` gets exactly one outcome.
    func propose(_ data: [UInt8], completion: @escaping (ProposalOutcome) -> Void) {
        guard !stopped else { return completion(.failed(.noLeader)) }
        let id = ProposalID(nextProposal)
        nextProposal += 1
        waiters[id] = completion
        step(.propose(data: data, id: id))
    }

    func step(_ event: RaftEvent) {
        step([event])
    }

    private func step(_ events: [RaftEvent]) {
        guard !stopped else { return }
        handle(raft.step(events))
    }

    private func handle(_ update: RaftUpdate) {
        // Committed entries may be applied before this update is durable:
        // a majority already holds them.
        if let snapshot = update.snapshot {
            hooks.restore(snapshot)
            appliedIndex = snapshot.metadata.index
            appliedTerm = snapshot.metadata.term
        }
        if !update.committedEntries.isEmpty {
            hooks.apply(update.committedEntries)
            if let last = update.committedEntries.last {
                appliedIndex = last.index
                appliedTerm = last.term
            }
        }
        for result in update.outcomes {
            waiters.removeValue(forKey: result.id)?(result.outcome)
        }
        if let status = update.status { hooks.statusChanged(status) }
        if update.needsPersistence || !queue.isEmpty || persisting {
            queue.append(PendingWrite(update: update, snapshotToSave: nil))
            persistNext()
        } else if !update.messages.isEmpty {
            hooks.send(update.messages)
        }
        if update.wantsSnapshot { takeSnapshot() }
    }

    /// Freezes the state machine now (on the loop: it must match
    /// `appliedIndex`), serializes it on the thread pool (a 300,000-path
    /// index took the loop 0.4-0.75 s, and a leader its leadership), then
    /// writes it through the persistence queue, after every entry it covers.
    private func takeSnapshot() {
        guard !snapshotInFlight, appliedIndex > raft.snapshotIndex else { return }
        snapshotInFlight = true
        let metadata = SnapshotMetadata(index: appliedIndex, term: appliedTerm, members: raft.config.members)
        let encode = hooks.snapshotEncoder()
        loop.queueWork(encode, completion: { [self] data in
            guard !stopped else { return }
            guard metadata.index > raft.snapshotIndex else {
                // A leader's snapshot was installed meanwhile: this one is
                // stale, and storage would refuse it (fatally) as older.
                snapshotInFlight = false
                return
            }
            var write = PendingWrite(update: RaftUpdate(), snapshotToSave: RaftSnapshot(metadata: metadata, data: data))
            write.update.messages = []
            queue.append(write)
            persistNext()
        })
    }

    private func persistNext() {
        guard !persisting, !queue.isEmpty else { return }
        persisting = true
        let batch = queue
        queue.removeAll(keepingCapacity: true)
        let storage = self.storage
        loop.queueWork({ () -> Result<Void, Error> in
            Result {
                for write in batch {
                    let u = write.update
                    if let snapshot = u.snapshot { try storage.saveSnapshot(snapshot) }
                    if !u.entries.isEmpty { try storage.append(u.entries) }
                    if let hs = u.hardState { try storage.setHardState(hs) }
                    if let snapshot = write.snapshotToSave { try storage.saveSnapshot(snapshot) }
                }
                try storage.sync()
            }
        }, completion: { [self] result in
            persisting = false
            if case .failure(let error) = result {
                hooks.fatal("cannot write the raft log in \(storage.directory): \(error)")
                return
            }
            fsyncCount += 1
            if batch.contains(where: { !$0.update.entries.isEmpty }) { logSyncCount += 1 }
            var acknowledge: RaftEvent?
            var savedSnapshot: RaftSnapshot?
            for write in batch {
                entriesPersisted += write.update.entries.count
                if !write.update.messages.isEmpty { hooks.send(write.update.messages) }
                if let event = write.update.persistedEvent { acknowledge = event }
                if let s = write.snapshotToSave { savedSnapshot = s }
            }
            var events: [RaftEvent] = []
            if let acknowledge { events.append(acknowledge) }
            if let savedSnapshot {
                snapshotInFlight = false
                events.append(.snapshotCreated(savedSnapshot))
                logger.info("snapshot taken", metadata: ["index": "\(savedSnapshot.metadata.index)",
                                                         "bytes": "\(savedSnapshot.data.count)"])
            }
            if !events.isEmpty { step(events) }
            persistNext()
        })
    }
}


extension Raft {
    /// The leader's view of how far `peer`'s log matches its own (0 when not leading).
    func matchIndex(of peer: NodeName) -> UInt64 {
        guard role == .leader, let slot = peers.firstIndex(of: peer), slot < progress.count else { return 0 }
        return progress[slot].match
    }
}
