/// Log replication: the leader's sends to each follower (probe, pipelined
/// replicate, heartbeats), the follower's handling of appends, and the commit
/// rule. Part of the `Raft` value.
extension Raft {
    // MARK: leader

    /// Sends whatever follower `slot` should get now: one probe, or as many
    /// appends as its in-flight window allows, and a commit notice if it is
    /// behind on the commit index and no append carried it.
    mutating func replicate(to slot: Int) {
        switch progress[slot].state {
        case .probe:
            if !progress[slot].probeSent {
                if sendAppend(to: slot) { progress[slot].probeSent = true }
            }
        case .replicate:
            while progress[slot].inflight.count < config.maxInflightAppends, progress[slot].next <= log.lastIndex {
                if !sendAppend(to: slot) { break }
            }
        case .snapshot:
            break
        }
        guard role == .leader else { return }
        if min(progress[slot].match, commitIndex) > progress[slot].commitSent {
            sendHeartbeat(to: slot)
        }
    }

    /// Sends one append starting at the follower's `next` (empty if nothing is
    /// new). Switches to sending the snapshot when `next` was compacted away.
    @discardableResult
    mutating func sendAppend(to slot: Int) -> Bool {
        let prevIndex = progress[slot].next - 1
        guard let prevTerm = log.term(at: prevIndex) else {
            startSnapshot(to: slot)
            return false
        }
        let entries = log.entries(from: prevIndex + 1, maxBytes: config.maxAppendBytes)
        let lastSent = prevIndex + UInt64(entries.count)
        send(.append(prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: commitIndex), to: peers[slot])
        if progress[slot].state == .replicate && !entries.isEmpty {
            progress[slot].next = lastSent + 1
            progress[slot].inflight.append(lastSent)
        }
        // The follower commits only up to what this message proved it holds.
        progress[slot].commitSent = max(progress[slot].commitSent, min(commitIndex, lastSent))
        return true
    }

    mutating func sendHeartbeat(to slot: Int) {
        // Never tell a follower to commit past what it is known to hold: its
        // log beyond `match` may still differ from ours.
        let commit = min(progress[slot].match, commitIndex)
        progress[slot].commitSent = max(progress[slot].commitSent, commit)
        send(.heartbeat(commit: commit), to: peers[slot])
    }

    mutating func receiveAppendResponse(_ slot: Int, _ result: AppendResult) {
        progress[slot].recentActive = true
        switch result {
        case let .accepted(matchIndex):
            guard matchIndex <= log.lastIndex else { return }
            let advanced = progress[slot].acknowledge(matchIndex)
            switch progress[slot].state {
            case .probe:
                if matchIndex + 1 >= progress[slot].next { progress[slot].becomeReplicate() }
            case .replicate:
                break
            case .snapshot:
                if progress[slot].match + 1 >= log.firstIndex { progress[slot].becomeReplicate() }
            }
            if advanced { maybeCommit() }
        case let .rejected(rejectedIndex, hintIndex, hintTerm):
            switch progress[slot].state {
            case .replicate:
                // Even of something acknowledged (answers come in order, so
                // it is no stale answer): the follower lost its log (its state
                // removed, it rejoined empty). The probe from `match` says.
                progress[slot].becomeProbe()
            case .probe:
                guard rejectedIndex == progress[slot].next - 1 else { return }
                if rejectedIndex <= progress[slot].match {
                    // It acknowledged this index and lacks it now: its log was
                    // lost. What it held counts for nothing; find what it has.
                    progress[slot].match = 0
                }
                var probe = hintIndex
                if hintTerm > 0 {
                    probe = log.lastIndex(atOrBelow: hintIndex, withTermAtMost: hintTerm).index
                }
                progress[slot].next = max(min(rejectedIndex, probe + 1), progress[slot].match + 1)
                progress[slot].probeSent = false
            case .snapshot:
                break
            }
        }
    }

    mutating func receiveHeartbeatResponse(_ slot: Int) {
        progress[slot].recentActive = true
        switch progress[slot].state {
        case .probe:
            progress[slot].probeSent = false
        case .replicate:
            guard progress[slot].match < log.lastIndex else { return }
            // Appends may have been lost: free a slot of a full window, and if
            // everything was already sent, send an empty append at the tail so
            // the follower either acknowledges it or rejects it into probing.
            if progress[slot].inflight.count >= config.maxInflightAppends {
                progress[slot].inflight.removeFirst()
            }
            if progress[slot].next > log.lastIndex { sendAppend(to: slot) }
        case .snapshot:
            break
        }
    }

    /// Advances the commit index to the highest index a majority holds, if that
    /// entry is of the current term (Raft §5.4.2).
    mutating func maybeCommit() {
        guard role == .leader else { return }
        var matches = [min(persistedIndex, log.lastIndex)]
        matches.reserveCapacity(members.count)
        for pr in progress { matches.append(pr.match) }
        matches.sort(by: >)
        let candidate = matches[quorum - 1]
        if candidate > commitIndex, log.term(at: candidate) == term {
            commitIndex = candidate
        }
    }

    // MARK: follower

    mutating func receiveAppend(from leader: NodeName, prevIndex: UInt64, prevTerm: UInt64, entries: [RaftEntry], commit: UInt64) {
        acceptLeader(leader)
        if prevIndex < commitIndex {
            // Stale: everything up to our commit index matches any leader's log.
            send(.appendResponse(.accepted(matchIndex: commitIndex)), to: leader)
            return
        }
        guard log.term(at: prevIndex) == prevTerm else {
            let hint = log.lastIndex(atOrBelow: prevIndex, withTermAtMost: prevTerm)
            send(.appendResponse(.rejected(rejectedIndex: prevIndex, hintIndex: hint.index, hintTerm: hint.term ?? 0)), to: leader)
            return
        }
        // Skip what we already hold; overwrite from the first entry that differs.
        var firstNew = 0
        while firstNew < entries.count, log.term(at: entries[firstNew].index) == entries[firstNew].term {
            firstNew += 1
        }
        if firstNew < entries.count {
            let overwriteFrom = entries[firstNew].index
            precondition(overwriteFrom > commitIndex,
                         "leader \(leader) overwrites committed entry \(overwriteFrom) (commit \(commitIndex)): Raft safety violated")
            if overwriteFrom <= log.lastIndex {
                persistedIndex = min(persistedIndex, overwriteFrom - 1)
            }
            let newEntries = entries[firstNew...]
            log.truncateAndAppend(newEntries)
            recordWrite(newEntries)
        }
        let lastNew = prevIndex + UInt64(entries.count)
        commitTo(min(commit, lastNew))
        send(.appendResponse(.accepted(matchIndex: lastNew)), to: leader)
    }

    mutating func receiveHeartbeat(from leader: NodeName, commit: UInt64) {
        acceptLeader(leader)
        commitTo(min(commit, log.lastIndex))
        guard commit <= log.lastIndex else {
            // The leader knows this node held entries up to `commit` (it
            // tells no one more than it acknowledged), and it does not: its
            // log was lost, its state removed. A rejection makes the leader
            // probe back to what is here; a heartbeat answer would not.
            send(.appendResponse(.rejected(rejectedIndex: commit, hintIndex: log.lastIndex, hintTerm: 0)), to: leader)
            return
        }
        send(.heartbeatResponse, to: leader)
    }

    mutating func commitTo(_ index: UInt64) {
        if index > commitIndex { commitIndex = index }
    }

    // MARK: both

    /// Storage made the log durable up to `index`; ignored if the log has been
    /// overwritten there since the write was issued.
    mutating func persisted(upTo index: UInt64, term entryTerm: UInt64) {
        guard index <= log.offset || log.term(at: index) == entryTerm else { return }
        let durable = min(index, log.lastIndex)
        guard durable > persistedIndex else { return }
        persistedIndex = durable
        maybeCommit()
    }

    /// Hands out the entries committed since the last update.
    mutating func applyCommitted() {
        guard commitIndex > appliedIndex else { return }
        let newlyCommitted = log.slice(from: appliedIndex + 1, through: commitIndex)
        out.committedEntries.append(contentsOf: newlyCommitted)
        let resolve = proposals.hasAppended
        for entry in newlyCommitted {
            bytesAppliedSinceSnapshot += entry.data.count
            if resolve { resolveProposals(appliedAt: entry) }
        }
        appliedIndex = commitIndex
    }
}
