/// Proposals: appending them on the leader, forwarding them from followers,
/// and giving every one an outcome (committed, or failed with a reason) by
/// watching what gets applied at its index and by a timeout. Part of the `Raft` value.
extension Raft {
    mutating func propose(_ data: [UInt8], id: ProposalID) {
        guard data.count <= config.maxAppendBytes else {
            report(id, .failed(.tooLarge))
            return
        }
        let deadline = now + UInt64(config.proposalTimeoutTicks)
        if role == .leader {
            let index = appendCommand(data)
            proposals.track(id, stage: .appended(index: index, term: term), deadline: deadline)
        } else if let leader {
            send(.propose(id: id, data: data), to: leader)
            proposals.track(id, stage: .forwarded(leader: leader, term: term), deadline: deadline)
        } else {
            report(id, .failed(.noLeader))
        }
    }

    private mutating func appendCommand(_ data: [UInt8]) -> UInt64 {
        let entry = RaftEntry(term: term, index: log.lastIndex + 1, kind: .command, data: data)
        log.append(entry)
        recordWrite(CollectionOfOne(entry))
        return entry.index
    }

    mutating func receiveForwardedProposal(id: ProposalID, data: [UInt8], from peer: NodeName, slot: Int) {
        // A duplicated forward must not be appended twice, nor appended after
        // a copy of it was refused (the proposer then reported a definite failure).
        if let earlier = forwards.answer(for: slot, id) {
            send(.proposeResponse(id: id, result: earlier), to: peer)
            return
        }
        let result: ForwardResult
        if role != .leader {
            result = .failed(.noLeader)
        } else if data.count > config.maxAppendBytes {
            result = .failed(.tooLarge)
        } else {
            result = .appended(index: appendCommand(data), term: term)
        }
        forwards.remember(slot, id, result)
        send(.proposeResponse(id: id, result: result), to: peer)
    }

    mutating func receiveProposalAnswer(id: ProposalID, result: ForwardResult) {
        guard case .forwarded? = proposals.stage(of: id) else { return }
        switch result {
        case let .failed(reason):
            proposals.remove(id)
            report(id, .failed(reason))
        case let .appended(index, entryTerm):
            if index <= appliedIndex {
                proposals.remove(id)
                report(id, outcomeOfApplied(index: index, term: entryTerm))
            } else {
                proposals.markAppended(id, index: index, term: entryTerm)
            }
        }
    }

    /// Settles the proposals that were appended at the index of `entry`, which
    /// was just committed: theirs if the term matches, someone else's otherwise.
    mutating func resolveProposals(appliedAt entry: RaftEntry) {
        for taken in proposals.takeAppended(at: entry.index) {
            report(taken.id, taken.term == entry.term ? .committed(index: entry.index) : .failed(.superseded))
        }
    }

    /// The outcome of a proposal appended at `index` in `term`, given that
    /// `index` is already applied here. When the entry there was compacted, the
    /// committed entry at the log offset still decides it: an entry committed
    /// there in the same term was written by the same leader, who put ours at
    /// `index`; a higher proposal term can never precede a lower committed one.
    func outcomeOfApplied(index: UInt64, term proposalTerm: UInt64) -> ProposalOutcome {
        if let appliedTerm = log.term(at: index) {
            return appliedTerm == proposalTerm ? .committed(index: index) : .failed(.superseded)
        }
        if proposalTerm == log.offsetTerm { return .committed(index: index) }
        if proposalTerm > log.offsetTerm { return .failed(.superseded) }
        return .failed(.coveredBySnapshot)
    }

    /// The leader changed: proposals forwarded to another one get their
    /// outcome now (leadershipLost: unknown, they may still be applied)
    /// instead of at their timeout, so proposers retry within a round trip
    /// of a failover rather than seconds later.
    mutating func failForwards(notTo newLeader: NodeName?) {
        for id in proposals.takeForwarded(notTo: newLeader) {
            report(id, .failed(.leadershipLost))
        }
    }

    mutating func expireProposals() {
        for expired in proposals.takeExpired(now: now) {
            let sameLeadership: Bool
            switch expired.stage {
            case let .forwarded(forwardedTo, forwardTerm):
                sameLeadership = forwardTerm == term && leader == forwardedTo
            case let .appended(_, entryTerm):
                sameLeadership = entryTerm == term && leader != nil
            }
            report(expired.id, .failed(sameLeadership ? .timedOut : .leadershipLost))
        }
    }
}
