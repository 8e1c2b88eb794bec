/// What a leader knows about one follower's log and how it is replicating to
/// it (etcd's Progress). Part of the `Raft` value (loop thread).
struct RaftProgress: Sendable {
    /// How the leader feeds this follower.
    enum State: Sendable {
        /// Finding where the logs agree: one append at a time.
        case probe
        /// Logs agree up to `match`: stream appends, up to the in-flight limit.
        case replicate
        /// The follower needs entries the leader compacted: stream the snapshot.
        case snapshot
    }

    var state: State = .probe
    /// Highest index known to be replicated on the follower.
    var match: UInt64 = 0
    /// Next index to send.
    var next: UInt64
    /// Probe state: an append is out; wait for its answer or a heartbeat answer.
    var probeSent = false
    /// Replicate state: last index of each append in flight, oldest first.
    var inflight: [UInt64] = []
    /// Heard from since the last check-quorum.
    var recentActive = false
    /// Highest commit index this follower has been told about.
    var commitSent: UInt64 = 0
    /// Snapshot state: which snapshot, how many bytes the follower holds, when
    /// the last chunk went out (to resend after silence).
    var snapshotIndex: UInt64 = 0
    var snapshotOffset: UInt64 = 0
    var snapshotSentAt: UInt64 = 0

    init(next: UInt64) { self.next = next }

    mutating func becomeProbe() {
        state = .probe
        next = match + 1
        probeSent = false
        inflight.removeAll()
    }

    mutating func becomeReplicate() {
        state = .replicate
        next = match + 1
        probeSent = false
        inflight.removeAll()
    }

    mutating func becomeSnapshot(index: UInt64, now: UInt64) {
        state = .snapshot
        snapshotIndex = index
        snapshotOffset = 0
        snapshotSentAt = now
        probeSent = false
        inflight.removeAll()
    }

    /// Records an acknowledged index; returns true if `match` advanced.
    mutating func acknowledge(_ index: UInt64) -> Bool {
        var advanced = false
        if index > match {
            match = index
            advanced = true
        }
        if next <= index { next = index + 1 }
        var freed = 0
        while freed < inflight.count, inflight[freed] <= index { freed += 1 }
        if freed > 0 { inflight.removeFirst(freed) }
        return advanced
    }
}
