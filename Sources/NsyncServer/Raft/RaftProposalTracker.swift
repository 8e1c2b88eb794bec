import DequeModule

/// The proposals made on this node that have no outcome yet: where each one
/// is (forwarded to a leader, or appended at an index in some term) and when
/// it times out. Lookups by id, by index (as entries are applied) and by
/// deadline are all O(1) per proposal. Part of the `Raft` value (loop thread).
struct RaftProposalTracker: Sendable {
    enum Stage: Equatable, Sendable {
        /// Sent to `leader` (leader of `term`); its index is not known yet.
        case forwarded(leader: NodeName, term: UInt64)
        /// In the log of the leader of `term` at `index`.
        case appended(index: UInt64, term: UInt64)
    }

    private struct Pending: Sendable {
        var stage: Stage
        var deadline: UInt64
    }

    private var pending: [ProposalID: Pending] = [:]
    private var byIndex: [UInt64: [ProposalID]] = [:]
    /// In deadline order, because every proposal gets the same timeout. Entries
    /// of proposals already resolved are skipped when they come up.
    private var deadlines: Deque<(deadline: UInt64, id: ProposalID)> = []

    var count: Int { pending.count }
    var hasAppended: Bool { !byIndex.isEmpty }

    func stage(of id: ProposalID) -> Stage? { pending[id]?.stage }

    mutating func track(_ id: ProposalID, stage: Stage, deadline: UInt64) {
        if pending[id] != nil { remove(id) }
        pending[id] = Pending(stage: stage, deadline: deadline)
        if case let .appended(index, _) = stage { byIndex[index, default: []].append(id) }
        deadlines.append((deadline, id))
    }

    /// A forwarded proposal learned its index.
    mutating func markAppended(_ id: ProposalID, index: UInt64, term: UInt64) {
        guard var entry = pending[id], case .forwarded = entry.stage else { return }
        entry.stage = .appended(index: index, term: term)
        pending[id] = entry
        byIndex[index, default: []].append(id)
    }

    @discardableResult
    mutating func remove(_ id: ProposalID) -> Stage? {
        guard let entry = pending.removeValue(forKey: id) else { return nil }
        if case let .appended(index, _) = entry.stage, var ids = byIndex[index] {
            ids.removeAll { $0 == id }
            byIndex[index] = ids.isEmpty ? nil : ids
        }
        return entry.stage
    }

    /// Stops tracking the proposals appended at `index`; returns each with its term.
    mutating func takeAppended(at index: UInt64) -> [(id: ProposalID, term: UInt64)] {
        guard let ids = byIndex.removeValue(forKey: index) else { return [] }
        var result: [(id: ProposalID, term: UInt64)] = []
        for id in ids {
            guard case let .appended(i, term)? = pending[id]?.stage, i == index else { continue }
            pending[id] = nil
            result.append((id, term))
        }
        return result
    }

    /// Stops tracking every proposal appended at or below `index` (a snapshot covered them).
    mutating func takeAppended(atOrBelow index: UInt64) -> [(id: ProposalID, index: UInt64, term: UInt64)] {
        var result: [(id: ProposalID, index: UInt64, term: UInt64)] = []
        for i in byIndex.keys where i <= index {
            for taken in takeAppended(at: i) { result.append((taken.id, i, taken.term)) }
        }
        return result
    }

    /// Stops tracking the proposals forwarded to a leader other than `leader`.
    mutating func takeForwarded(notTo leader: NodeName?) -> [ProposalID] {
        var taken: [ProposalID] = []
        for (id, entry) in pending {
            if case let .forwarded(to, _) = entry.stage, to != leader { taken.append(id) }
        }
        for id in taken { pending[id] = nil }
        return taken.sorted { $0.value < $1.value }
    }

    /// Stops tracking the proposals whose deadline is at or before `now`.
    mutating func takeExpired(now: UInt64) -> [(id: ProposalID, stage: Stage)] {
        var result: [(id: ProposalID, stage: Stage)] = []
        while let first = deadlines.first, first.deadline <= now {
            deadlines.removeFirst()
            guard let entry = pending[first.id], entry.deadline == first.deadline else { continue }
            remove(first.id)
            result.append((first.id, entry.stage))
        }
        return result
    }
}

/// The answers this node gave to the last few thousand proposals forwarded to
/// it, by sender and id, so a duplicated forward (a resend after a reconnect,
/// a duplicating network) gets the same answer instead of a second log entry.
/// Part of the `Raft` value (loop thread).
struct RaftForwardedProposals: Sendable {
    private struct Key: Hashable, Sendable {
        let peer: Int
        let id: ProposalID
    }

    /// Enough to cover any duplicate a network delivers within seconds at
    /// nsyncd's proposal rates; older ones are forgotten first.
    static let capacity = 16_384

    private var answers: [Key: ForwardResult] = [:]
    private var order: Deque<Key> = []

    func answer(for peer: Int, _ id: ProposalID) -> ForwardResult? {
        answers[Key(peer: peer, id: id)]
    }

    mutating func remember(_ peer: Int, _ id: ProposalID, _ result: ForwardResult) {
        let key = Key(peer: peer, id: id)
        if answers.updateValue(result, forKey: key) == nil { order.append(key) }
        while order.count > Self.capacity { answers[order.removeFirst()] = nil }
    }
}
