/// Snapshots: asking the driver for one, compacting the log behind it,
/// streaming it in chunks to a follower that needs compacted entries, and
/// installing one received from the leader. Part of the `Raft` value.
extension Raft {
    // MARK: local snapshots

    /// Raises `wantsSnapshot` when enough was applied since the last snapshot,
    /// and again if the driver has not answered for a while.
    mutating func requestSnapshotIfDue() {
        guard appliedIndex > snapshotIndex else { return }
        if let askedAt = snapshotRequestedAt, now - askedAt < UInt64(config.snapshotRetryTicks) { return }
        if appliedIndex - snapshotIndex >= config.snapshotThresholdEntries
            || bytesAppliedSinceSnapshot >= config.snapshotThresholdBytes {
            out.wantsSnapshot = true
            snapshotRequestedAt = now
        }
    }

    /// The driver's (already durable) snapshot: keep it for followers and
    /// compact the log behind it. A snapshot that is stale (not newer than the
    /// current one), ahead of what was handed out, or of another history is ignored.
    mutating func snapshotCreated(_ newSnapshot: RaftSnapshot) {
        let index = newSnapshot.metadata.index
        guard index > snapshotIndex, index <= appliedIndex, log.term(at: index) == newSnapshot.metadata.term else {
            return
        }
        snapshot = newSnapshot
        snapshotRequestedAt = nil
        bytesAppliedSinceSnapshot = 0
        let trailing = config.compactionTrailingEntries
        let compactTo = index > trailing ? index - trailing : 0
        if compactTo > log.offset {
            log.compact(through: compactTo)
            out.compactedThrough = compactTo
        }
    }

    // MARK: leader: sending

    mutating func startSnapshot(to slot: Int) {
        guard let snapshot else { return }
        progress[slot].becomeSnapshot(index: snapshot.metadata.index, now: now)
        sendSnapshotChunk(to: slot)
    }

    /// Sends the chunk at the follower's acknowledged offset. One chunk is in
    /// flight at a time; silence is handled by `resendStalledSnapshots`.
    mutating func sendSnapshotChunk(to slot: Int) {
        guard let snapshot else { return }
        if progress[slot].snapshotIndex != snapshot.metadata.index {
            // A newer snapshot replaced the one being sent: start it over.
            progress[slot].snapshotIndex = snapshot.metadata.index
            progress[slot].snapshotOffset = 0
        }
        let total = snapshot.data.count
        let start = Int(min(progress[slot].snapshotOffset, UInt64(total)))
        let end = min(start + config.snapshotChunkBytes, total)
        let chunk = SnapshotChunk(metadata: snapshot.metadata, offset: UInt64(start),
                                  data: Array(snapshot.data[start..<end]), done: end == total)
        send(.installSnapshot(chunk), to: peers[slot])
        progress[slot].snapshotSentAt = now
    }

    mutating func resendStalledSnapshots() {
        for slot in progress.indices where progress[slot].state == .snapshot {
            if now - progress[slot].snapshotSentAt >= UInt64(config.electionTicks.lowerBound) {
                sendSnapshotChunk(to: slot)
            }
        }
    }

    mutating func receiveSnapshotResponse(_ slot: Int, index: UInt64, nextOffset: UInt64) {
        progress[slot].recentActive = true
        guard progress[slot].state == .snapshot, progress[slot].snapshotIndex == index else { return }
        // An answer repeating the offset we already know is a duplicate.
        guard nextOffset != progress[slot].snapshotOffset else { return }
        progress[slot].snapshotOffset = nextOffset
        sendSnapshotChunk(to: slot)
    }

    // MARK: follower: receiving

    mutating func receiveSnapshotChunk(_ chunk: SnapshotChunk, from leader: NodeName) {
        acceptLeader(leader)
        let metadata = chunk.metadata
        if metadata.index <= commitIndex {
            incomingSnapshot = nil
            send(.appendResponse(.accepted(matchIndex: commitIndex)), to: leader)
            return
        }
        if incomingSnapshot?.metadata != metadata {
            guard chunk.offset == 0 else {
                send(.installSnapshotResponse(index: metadata.index, term: metadata.term, nextOffset: 0), to: leader)
                return
            }
            incomingSnapshot = (metadata, [])
        }
        let held = UInt64(incomingSnapshot!.data.count)
        guard chunk.offset == held else {
            send(.installSnapshotResponse(index: metadata.index, term: metadata.term, nextOffset: held), to: leader)
            return
        }
        incomingSnapshot!.data.append(contentsOf: chunk.data)
        guard chunk.done else {
            send(.installSnapshotResponse(index: metadata.index, term: metadata.term,
                                          nextOffset: UInt64(incomingSnapshot!.data.count)), to: leader)
            return
        }
        let complete = RaftSnapshot(metadata: metadata, data: incomingSnapshot!.data)
        incomingSnapshot = nil
        install(complete)
        send(.appendResponse(.accepted(matchIndex: metadata.index)), to: leader)
    }

    /// Replaces the log and the state machine with a leader's snapshot (newer
    /// than our commit index) — unless our log already holds its last entry,
    /// in which case it only tells us that much is committed.
    private mutating func install(_ newSnapshot: RaftSnapshot) {
        let index = newSnapshot.metadata.index
        if log.term(at: index) == newSnapshot.metadata.term {
            commitTo(index)
            return
        }
        // Only the committed prefix of the old stored log is known to agree
        // with the snapshot's history.
        persistedIndex = min(persistedIndex, commitIndex)
        log.reset(offset: index, term: newSnapshot.metadata.term)
        snapshot = newSnapshot
        commitIndex = index
        appliedIndex = index
        bytesAppliedSinceSnapshot = 0
        snapshotRequestedAt = nil
        out.entries.removeAll()
        out.committedEntries.removeAll()
        out.snapshot = newSnapshot
        for covered in proposals.takeAppended(atOrBelow: index) {
            report(covered.id, outcomeOfApplied(index: covered.index, term: covered.term))
        }
    }
}
