@testable import NsyncServer

/// Identifies a log entry across nodes.
struct EntryKey: Hashable {
    let index: UInt64
    let term: UInt64
}

/// What every log holding an entry must agree on: its content and the term of
/// the entry before it (by induction, the whole prefix: log matching).
struct EntryFact {
    let digest: UInt64
    let previousTerm: UInt64?
}

/// The safety properties of Raft (paper Figure 3), checked after every step,
/// plus proposal outcomes and, at the end, liveness after healing.
extension RaftSimulation {
    func checkAfterStep(_ node: Int, _ update: RaftUpdate) {
        let raft = nodes[node].raft!
        let name = nodes[node].name

        // Election safety: at most one leader per term.
        if raft.role == .leader {
            if let other = leaderOfTerm[raft.term], other != node {
                fail("election safety: \(nodes[other].name) and \(name) both lead term \(raft.term)")
                return
            }
            leaderOfTerm[raft.term] = node
            if !nodes[node].wasLeader { checkLeaderCompleteness(node) }
        }
        nodes[node].wasLeader = raft.role == .leader

        // Log matching: an (index, term) names one entry with one history.
        if let first = update.entries.first {
            var previousTerm = raft.log.term(at: first.index - 1)
            for entry in update.entries {
                guard raft.log.term(at: entry.index) == entry.term else {
                    fail("\(name): update writes entry \(entry.index)/\(entry.term) that its log does not hold")
                    return
                }
                let key = EntryKey(index: entry.index, term: entry.term)
                let fact = EntryFact(digest: SimulatedStateMachine.digest(entry), previousTerm: previousTerm)
                if let known = entryFacts[key] {
                    if known.digest != fact.digest {
                        fail("log matching: two different entries at index \(entry.index) term \(entry.term) (\(name))")
                        return
                    }
                    if let a = known.previousTerm, let b = fact.previousTerm, a != b {
                        fail("log matching: entry \(entry.index)/\(entry.term) follows term \(a) on one node and \(b) on \(name)")
                        return
                    }
                } else {
                    entryFacts[key] = fact
                }
                previousTerm = entry.term
            }
        }

        // Committed entries never change, on any node.
        if raft.commitIndex > nodes[node].commitSeen {
            var index = max(nodes[node].commitSeen, raft.log.offset) + 1
            while index <= raft.commitIndex {
                guard let term = raft.log.term(at: index) else {
                    fail("\(name): committed index \(index) is not in its log")
                    return
                }
                recordCommitted(index: index, term: term, by: name)
                index += 1
            }
            nodes[node].commitSeen = raft.commitIndex
        }
    }

    private func recordCommitted(index: UInt64, term: UInt64, by name: NodeName) {
        while committedTerm.count <= Int(index) { committedTerm.append(0) }
        let known = committedTerm[Int(index)]
        if known == 0 {
            committedTerm[Int(index)] = term
        } else if known != term {
            fail("state machine safety: index \(index) committed with term \(known) and with term \(term) (\(name))")
        }
    }

    /// Leader completeness: a new leader holds every entry committed so far.
    private func checkLeaderCompleteness(_ node: Int) {
        let raft = nodes[node].raft!
        let highest = UInt64(committedTerm.count - 1)
        guard highest > 0 else { return }
        if raft.log.lastIndex < highest {
            fail("leader completeness: \(nodes[node].name) leads term \(raft.term) with log ending at \(raft.log.lastIndex), but \(highest) is committed")
            return
        }
        var index = raft.log.offset + 1
        while index <= highest {
            let committed = committedTerm[Int(index)]
            if committed != 0, raft.log.term(at: index) != committed {
                fail("leader completeness: \(nodes[node].name) (term \(raft.term)) has term \(raft.log.term(at: index) ?? 0) at committed index \(index) of term \(committed)")
                return
            }
            index += 1
        }
    }

    /// State machine safety: every node applies the same entry at each index, in order.
    func apply(_ entry: RaftEntry, on node: Int) {
        let name = nodes[node].name
        guard entry.index == nodes[node].machine.appliedIndex + 1 else {
            fail("\(name) applies entry \(entry.index) after \(nodes[node].machine.appliedIndex)")
            return
        }
        nodes[node].machine.apply(entry)
        let index = Int(entry.index)
        while chainAt.count <= index { chainAt.append(nil) }
        if let chain = chainAt[index] {
            if chain != nodes[node].machine.chain {
                fail("state machine safety: \(name) applied a different history up to index \(index)")
                return
            }
        } else {
            chainAt[index] = nodes[node].machine.chain
        }
        recordCommitted(index: entry.index, term: entry.term, by: name)
        guard entry.kind == .command else { return }
        var buffer = ByteBuffer(bytes: entry.data)
        guard let number = try? buffer.readInteger(as: UInt64.self), Int(number) < proposals.count else {
            fail("\(name) applied a command nobody proposed at \(index)")
            return
        }
        let proposal = Int(number)
        if let earlier = commandAt[proposal] {
            if earlier != entry.index { fail("proposal \(proposal) committed twice: at \(earlier) and \(entry.index)") }
            return
        }
        commandAt[proposal] = entry.index
        if case let .failed(reason)? = proposals[proposal].outcome, reason.isDefinite {
            fail("proposal \(proposal) was reported '\(reason)' but was committed at \(entry.index)")
        }
    }

    func checkInstalledSnapshot(_ node: Int, _ snapshot: RaftSnapshot) {
        let index = Int(snapshot.metadata.index)
        guard index > 0 else { return }
        while chainAt.count <= index { chainAt.append(nil) }
        if let chain = chainAt[index], chain != nodes[node].machine.chain {
            fail("state machine safety: snapshot at \(index) on \(nodes[node].name) holds a different history")
        } else if chainAt[index] == nil {
            chainAt[index] = nodes[node].machine.chain
        }
    }

    func checkOutcome(_ result: ProposalResult, on node: Int) {
        let number = Int(result.id.value)
        guard number < proposals.count, proposals[number].node == node,
              proposals[number].incarnation == nodes[node].incarnation else {
            fail("\(nodes[node].name) reports an outcome for \(result.id), which it did not propose")
            return
        }
        guard proposals[number].outcome == nil else {
            fail("\(nodes[node].name) reports a second outcome for \(result.id): \(result.outcome)")
            return
        }
        proposals[number].outcome = result.outcome
        unresolved -= 1
        let waited = now - proposals[number].proposedAt
        let bound = UInt64(nodes[node].config.proposalTimeoutTicks + 2) * nodes[node].tickPeriod
        if waited > bound {
            fail("\(result.id) on \(nodes[node].name) waited \(waited / 1000) ms for its outcome (bound \(bound / 1000) ms)")
        }
        switch result.outcome {
        case let .committed(index):
            if commandAt[number] != index {
                fail("\(result.id) reported committed at \(index) but the entry there is \(commandAt[number].map { "at \($0)" } ?? "not it")")
            }
        case let .failed(reason):
            if reason.isDefinite, let index = commandAt[number] {
                fail("\(result.id) reported '\(reason)' but it was committed at \(index)")
            }
        }
    }

    /// Liveness after healing, proposal outcomes, convergence, whole-log matching.
    func checkEnd() {
        guard let electedAt = leaderAfterHealAt else {
            fail("no leader followed by every node within \((endTime - healTime) / 1000) ms of healing")
            return
        }
        if electedAt - healTime > 3_000_000 {
            fail("a stable leader took \((electedAt - healTime) / 1000) ms after healing (bound 3000 ms)")
        }
        for (number, proposal) in proposals.enumerated() where proposal.outcome == nil && !proposal.abandoned {
            fail("proposal \(number) on \(nodes[proposal.node].name) (at \(proposal.proposedAt / 1000) ms) never got an outcome")
            return
        }
        guard quietAt != nil else {
            fail("nodes did not converge within \((endTime - stopProposalsAt) / 1000) ms of the last proposal: \(describeNodes())")
            return
        }
        for a in nodes.indices {
            for b in nodes.indices where a < b {
                checkLogsMatch(nodes[a].raft!, nodes[b].raft!)
            }
        }
    }

    private func checkLogsMatch(_ a: Raft, _ b: Raft) {
        let low = max(a.log.offset, b.log.offset)
        let high = min(a.log.lastIndex, b.log.lastIndex)
        guard low < high else { return }
        var index = high
        while index > low, a.log.term(at: index) != b.log.term(at: index) { index -= 1 }
        while index > low {
            if a.log.entry(at: index) != b.log.entry(at: index) {
                fail("log matching: \(a.config.name) and \(b.config.name) share a later entry but differ at \(index)")
                return
            }
            index -= 1
        }
    }

    /// Each node's role, term, log and (for a leader) view of its followers.
    func describeNodes() -> String {
        nodes.map { node -> String in
            guard let raft = node.raft else { return "\(node.name) down" }
            var text = "\(node.name) \(raft.role) t\(raft.term) log \(raft.log.firstIndex)...\(raft.log.lastIndex) commit \(raft.commitIndex) persisted \(raft.persistedIndex) writes \(node.writes.count)"
            if raft.role == .leader {
                text += " [" + zip(raft.peers, raft.progress).map { "\($0.0): \($0.1.state) match \($0.1.match) next \($0.1.next) inflight \($0.1.inflight.count)" }.joined(separator: ", ") + "]"
            }
            return text
        }.joined(separator: "; ")
    }
}
