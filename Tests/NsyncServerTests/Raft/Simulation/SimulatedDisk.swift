@testable import NsyncServer

/// The simulated durable storage of one node: only writes the simulation has
/// completed are here, so a crash loses the rest (or keeps a torn prefix of
/// them). Enforces the storage contract of `RaftUpdate`. Single-threaded test value.
struct SimulatedDisk {
    /// One durable step of a write, at the granularity a torn tail can cut.
    enum Operation {
        case installSnapshot(RaftSnapshot)
        /// Overwrite from the entry's index on, i.e. truncate there and append it.
        case entry(RaftEntry)
        case hardState(HardState)
        case compact(through: UInt64)
    }

    private(set) var hardState = HardState()
    private(set) var snapshot: RaftSnapshot?
    /// Index of `log[0]`.
    private(set) var logStart: UInt64 = 1
    private(set) var log: [RaftEntry] = []

    var lastLogIndex: UInt64 { logStart + UInt64(log.count) - 1 }

    /// The operations of one update, in the order storage must perform them.
    static func operations(of update: RaftUpdate) -> [Operation] {
        var operations: [Operation] = []
        if let snapshot = update.snapshot { operations.append(.installSnapshot(snapshot)) }
        for entry in update.entries { operations.append(.entry(entry)) }
        if let hardState = update.hardState { operations.append(.hardState(hardState)) }
        if let compaction = update.compactedThrough { operations.append(.compact(through: compaction)) }
        return operations
    }

    /// Performs one operation; returns a description of a contract violation instead.
    mutating func apply(_ operation: Operation) -> String? {
        switch operation {
        case let .installSnapshot(snapshot):
            self.snapshot = snapshot
            log.removeAll()
            logStart = snapshot.metadata.index + 1
        case let .entry(entry):
            guard entry.index >= logStart else {
                return "storage asked to overwrite entry \(entry.index) below the stored log start \(logStart)"
            }
            guard entry.index <= lastLogIndex + 1 else {
                return "storage asked to write entry \(entry.index) after stored entry \(lastLogIndex): a gap"
            }
            log.removeLast(Int(lastLogIndex + 1 - entry.index))
            log.append(entry)
        case let .hardState(hardState):
            self.hardState = hardState
        case let .compact(through):
            if through >= logStart {
                log.removeFirst(min(Int(through - logStart + 1), log.count))
                logStart = through + 1
            }
        }
        return nil
    }

    /// The driver writes its own snapshots before telling the core about them.
    mutating func saveCreatedSnapshot(_ created: RaftSnapshot) {
        if created.metadata.index > (snapshot?.metadata.index ?? 0) { snapshot = created }
    }

    func recovered() -> RaftRecoveredState {
        let snapshotIndex = snapshot?.metadata.index ?? 0
        return RaftRecoveredState(hardState: hardState, snapshot: snapshot, entries: log.filter { $0.index > snapshotIndex })
    }
}

/// The replicated state machine of the simulation: a hash chain over every
/// applied entry, so two nodes agree on their chain at an index exactly when
/// they applied the same sequence up to it. Single-threaded test value.
struct SimulatedStateMachine {
    private(set) var appliedIndex: UInt64 = 0
    private(set) var appliedTerm: UInt64 = 0
    private(set) var chain: UInt64 = 0xcbf2_9ce4_8422_2325

    init() {}

    /// Restores from a snapshot made by `snapshot(members:)`.
    init?(restoring snapshot: RaftSnapshot?) {
        guard let snapshot else { return }
        var buffer = ByteBuffer(bytes: snapshot.data)
        guard let index = try? buffer.readInteger(as: UInt64.self),
              let term = try? buffer.readInteger(as: UInt64.self),
              let chain = try? buffer.readInteger(as: UInt64.self),
              index == snapshot.metadata.index, term == snapshot.metadata.term else { return nil }
        appliedIndex = index
        appliedTerm = term
        self.chain = chain
    }

    static func digest(_ entry: RaftEntry) -> UInt64 {
        var hash: UInt64 = 0x100_0000_01b3 &* (UInt64(entry.kind.rawValue) &+ 1)
        for byte in entry.data { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    mutating func apply(_ entry: RaftEntry) {
        appliedIndex = entry.index
        appliedTerm = entry.term
        chain = (chain ^ Self.digest(entry) ^ (entry.term &* 0x9E37_79B9_7F4A_7C15)) &* 0x100_0000_01b3
        chain ^= chain >> 29
    }

    /// Index, term and chain, padded so snapshots span several chunks.
    func snapshot(members: [NodeName]) -> RaftSnapshot {
        var buffer = ByteBuffer(capacity: 256)
        buffer.writeInteger(appliedIndex)
        buffer.writeInteger(appliedTerm)
        buffer.writeInteger(chain)
        buffer.writeBytes((0..<(100 + Int(chain % 100))).map { UInt8(truncatingIfNeeded: $0) })
        return RaftSnapshot(metadata: SnapshotMetadata(index: appliedIndex, term: appliedTerm, members: members), data: buffer.bytes)
    }
}
