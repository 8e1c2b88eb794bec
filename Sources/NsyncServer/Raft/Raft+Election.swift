/// Terms, roles and elections: ticks, the term rules every message passes
/// through, pre-vote, votes, check-quorum. Part of the `Raft` value.
extension Raft {
    // MARK: time

    mutating func tick() {
        now += 1
        expireProposals()
        if role == .leader {
            tickLeader()
            return
        }
        electionElapsed += 1
        if electionElapsed >= randomizedElectionTimeout {
            campaign()
        }
    }

    private mutating func tickLeader() {
        heartbeatElapsed += 1
        electionElapsed += 1
        if electionElapsed >= config.electionTicks.lowerBound {
            electionElapsed = 0
            if config.checkQuorum {
                var active = 1
                for slot in progress.indices {
                    if progress[slot].recentActive { active += 1 }
                    progress[slot].recentActive = false
                }
                if active < quorum {
                    // Cut off from a majority: a leader elsewhere may be serving
                    // writes, so stop claiming leadership (and lease) here.
                    becomeFollower(term: term, leader: nil)
                    return
                }
            }
        }
        if heartbeatElapsed >= config.heartbeatTicks {
            heartbeatElapsed = 0
            for slot in peers.indices { sendHeartbeat(to: slot) }
        }
        resendStalledSnapshots()
    }


    // MARK: roles

    mutating func becomeFollower(term newTerm: UInt64, leader newLeader: NodeName?) {
        if newTerm > term {
            term = newTerm
            vote = nil
        }
        let wasFollower = role == .follower
        if role == .leader { progress = [] }
        role = .follower
        if let newLeader, newLeader != leader { failForwards(notTo: newLeader) }
        leader = newLeader
        if wasFollower {
            electionElapsed = 0
        } else {
            resetElectionTimer()
        }
    }

    mutating func campaign() {
        if config.preVote { becomePreCandidate() } else { becomeCandidate() }
    }

    private mutating func becomePreCandidate() {
        role = .preCandidate
        leader = nil
        resetElectionTimer()
        resetVotes()
        if quorum == 1 {
            becomeCandidate()
            return
        }
        for peer in peers {
            send(.preVote(lastIndex: log.lastIndex, lastTerm: log.lastTerm), to: peer, term: term + 1)
        }
    }

    private mutating func becomeCandidate() {
        term += 1
        vote = config.name
        role = .candidate
        leader = nil
        failForwards(notTo: nil)
        resetElectionTimer()
        resetVotes()
        if quorum == 1 {
            becomeLeader()
            return
        }
        for peer in peers {
            send(.vote(lastIndex: log.lastIndex, lastTerm: log.lastTerm), to: peer)
        }
    }

    private mutating func becomeLeader() {
        role = .leader
        leader = config.name
        failForwards(notTo: nil)
        electionElapsed = 0
        heartbeatElapsed = 0
        incomingSnapshot = nil
        progress = Array(repeating: RaftProgress(next: log.lastIndex + 1), count: peers.count)
        // The no-op of the new term: committing it commits everything before it
        // (entries of earlier terms are never committed by counting replicas).
        let noop = RaftEntry(term: term, index: log.lastIndex + 1, kind: .noop)
        log.append(noop)
        recordWrite(CollectionOfOne(noop))
        if quorum == 1 { maybeCommit() }
    }

    private mutating func resetVotes() {
        for i in votes.indices { votes[i] = nil }
    }

    /// Counts one answer; decides the round when a majority agrees either way.
    private mutating func poll(_ slot: Int, granted: Bool) {
        if votes[slot] == nil { votes[slot] = granted }
        var yes = 1
        var no = 0
        for answer in votes {
            if answer == true { yes += 1 } else if answer == false { no += 1 }
        }
        if yes >= quorum {
            if role == .preCandidate { becomeCandidate() } else { becomeLeader() }
        } else if no >= quorum {
            becomeFollower(term: term, leader: nil)
        }
    }

    // MARK: messages

    /// Entry point of every peer message: applies the term rules, then hands
    /// the message to its handler.
    mutating func receive(_ message: RaftMessage) {
        guard message.to == config.name, let slot = Self.slot(of: message.from, in: peers) else { return }
        switch message.kind {
        // Forwarding is not part of the consensus protocol: its answers stay
        // valid across terms, so they bypass the term rules.
        case let .propose(id, data):
            receiveForwardedProposal(id: id, data: data, from: message.from, slot: slot)
            return
        case let .proposeResponse(id, result):
            receiveProposalAnswer(id: id, result: result)
            return
        default:
            break
        }

        if message.term > term {
            // In lease: this node heard from a leader within the minimum election
            // timeout (a leader always has), so it will not help unseat that leader.
            let inLease = leader != nil && electionElapsed < config.electionTicks.lowerBound
            switch message.kind {
            case .preVote:
                // Pre-vote never changes our term; a live leader keeps it.
                if inLease {
                    send(.preVoteResponse(granted: false), to: message.from)
                    return
                }
            case .vote:
                // Leader stickiness: while we hear from a leader, a candidate
                // with a higher term is ignored rather than obeyed.
                if config.checkQuorum && inLease { return }
                becomeFollower(term: message.term, leader: nil)
            case .preVoteResponse(granted: true):
                break
            case .append, .heartbeat, .installSnapshot:
                becomeFollower(term: message.term, leader: message.from)
            default:
                becomeFollower(term: message.term, leader: nil)
            }
        } else if message.term < term {
            switch message.kind {
            case .append, .heartbeat, .installSnapshot:
                // A leader of an older term that cannot know it was replaced:
                // tell it our term so it steps down (pre-vote and check-quorum
                // mean our term was not bumped by a vote it would have seen).
                if config.checkQuorum || config.preVote { send(.heartbeatResponse, to: message.from) }
            case .preVote:
                send(.preVoteResponse(granted: false), to: message.from)
            default:
                break
            }
            return
        }

        switch message.kind {
        case let .preVote(lastIndex, lastTerm):
            receiveVoteRequest(message, lastIndex: lastIndex, lastTerm: lastTerm, pre: true)
        case let .vote(lastIndex, lastTerm):
            receiveVoteRequest(message, lastIndex: lastIndex, lastTerm: lastTerm, pre: false)
        case let .preVoteResponse(granted):
            if role == .preCandidate && message.term == (granted ? term + 1 : term) {
                poll(slot, granted: granted)
            }
        case let .voteResponse(granted):
            if role == .candidate { poll(slot, granted: granted) }
        case let .append(prevIndex, prevTerm, entries, commit):
            receiveAppend(from: message.from, prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: commit)
        case let .heartbeat(commit):
            receiveHeartbeat(from: message.from, commit: commit)
        case let .installSnapshot(chunk):
            receiveSnapshotChunk(chunk, from: message.from)
        case let .appendResponse(result):
            if role == .leader { receiveAppendResponse(slot, result) }
        case .heartbeatResponse:
            if role == .leader { receiveHeartbeatResponse(slot) }
        case let .installSnapshotResponse(index, _, nextOffset):
            if role == .leader { receiveSnapshotResponse(slot, index: index, nextOffset: nextOffset) }
        case .propose, .proposeResponse:
            break
        }
    }

    private mutating func receiveVoteRequest(_ message: RaftMessage, lastIndex: UInt64, lastTerm: UInt64, pre: Bool) {
        let canVote = vote == message.from
            || (vote == nil && leader == nil)
            || (pre && message.term > term)
        let upToDate = lastTerm > log.lastTerm || (lastTerm == log.lastTerm && lastIndex >= log.lastIndex)
        if canVote && upToDate {
            send(pre ? .preVoteResponse(granted: true) : .voteResponse(granted: true), to: message.from, term: message.term)
            if !pre {
                vote = message.from
                electionElapsed = 0
            }
        } else {
            send(pre ? .preVoteResponse(granted: false) : .voteResponse(granted: false), to: message.from)
        }
    }

    /// A message from the leader of the current term: follow it.
    mutating func acceptLeader(_ from: NodeName) {
        if role != .follower || leader != from {
            becomeFollower(term: term, leader: from)
        }
        electionElapsed = 0
    }
}
