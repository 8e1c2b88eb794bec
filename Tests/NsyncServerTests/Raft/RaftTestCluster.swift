import XCTest
@testable import NsyncServer

/// A small synchronous cluster for the paper-section tests (etcd's `network`):
/// messages go into one FIFO mailbox and are delivered by `deliverAll`,
/// persistence completes immediately after each step, links can be cut.
/// Single-threaded test value.
struct RaftTestCluster {
    var nodes: [NodeName: Raft] = [:]
    var names: [NodeName]
    var mailbox: [RaftMessage] = []
    /// Directed links that drop everything: (from, to).
    var cut: Set<[NodeName]> = []
    var applied: [NodeName: [RaftEntry]] = [:]
    var outcomes: [NodeName: [ProposalResult]] = [:]
    var snapshotsWanted: [NodeName: Int] = [:]
    var delivered = 0

    init(_ names: [NodeName], seed: UInt64 = 1, configure: (inout RaftConfig) -> Void = { _ in }) throws {
        self.names = names
        for (i, name) in names.enumerated() {
            var config = RaftConfig(name: name, peers: names)
            config.randomSeed = seed &+ UInt64(i) &* 7919
            configure(&config)
            nodes[name] = try Raft(config: config)
            applied[name] = []
            outcomes[name] = []
        }
    }

    subscript(name: NodeName) -> Raft {
        get { nodes[name]! }
        set { nodes[name] = newValue }
    }

    /// Steps one event on `name`, completes its persistence at once, queues its messages.
    @discardableResult
    mutating func step(_ name: NodeName, _ event: RaftEvent) -> RaftUpdate {
        let update = nodes[name]!.step(event)
        absorb(name, update)
        return update
    }

    mutating func absorb(_ name: NodeName, _ update: RaftUpdate) {
        applied[name]!.append(contentsOf: update.committedEntries)
        outcomes[name]!.append(contentsOf: update.outcomes)
        if update.wantsSnapshot { snapshotsWanted[name, default: 0] += 1 }
        for message in update.messages where !cut.contains([message.from, message.to]) {
            mailbox.append(message)
        }
        if let ack = update.persistedEvent { step(name, ack) }
    }

    mutating func deliverAll(limit: Int = 100_000) {
        var count = 0
        while !mailbox.isEmpty && count < limit {
            let message = mailbox.removeFirst()
            count += 1
            delivered += 1
            guard nodes[message.to] != nil, !cut.contains([message.from, message.to]) else { continue }
            step(message.to, .message(message))
        }
        precondition(mailbox.isEmpty, "cluster did not quiesce within \(limit) messages")
    }

    mutating func isolate(_ name: NodeName) {
        for other in names where other != name {
            cut.insert([name, other])
            cut.insert([other, name])
        }
    }

    mutating func heal() { cut.removeAll() }

    /// Ticks `name` until it starts campaigning (bounded), then delivers everything.
    mutating func campaign(_ name: NodeName) {
        for _ in 0...nodes[name]!.config.electionTicks.upperBound + 1 {
            step(name, .tick)
            if nodes[name]!.role != .follower { break }
        }
        deliverAll()
    }

    mutating func tickAll(_ times: Int = 1, deliver: Bool = true) {
        for _ in 0..<times {
            for name in names { step(name, .tick) }
            if deliver { deliverAll() }
        }
    }

    mutating func propose(_ name: NodeName, _ text: String, id: UInt64) {
        step(name, .propose(data: Array(text.utf8), id: ProposalID(id)))
    }

    var leaders: [NodeName] { names.filter { nodes[$0]!.role == .leader } }

    func commands(_ name: NodeName) -> [String] {
        applied[name]!.filter { $0.kind == .command }.map { String(decoding: $0.data, as: UTF8.self) }
    }

    func outcome(_ name: NodeName, _ id: UInt64) -> ProposalOutcome? {
        outcomes[name]!.first { $0.id == ProposalID(id) }?.outcome
    }
}

/// Builds one node for message-level tests.
func makeRaft(_ name: NodeName = "a", peers: [NodeName] = ["a", "b", "c"], recovered: RaftRecoveredState = RaftRecoveredState(),
              configure: (inout RaftConfig) -> Void = { _ in }) throws -> Raft {
    var config = RaftConfig(name: name, peers: peers)
    config.randomSeed = 42
    configure(&config)
    return try Raft(config: config, recovered: recovered)
}

func entries(_ terms: [UInt64], from start: UInt64 = 1) -> [RaftEntry] {
    terms.enumerated().map { RaftEntry(term: $0.element, index: start + UInt64($0.offset), data: [UInt8($0.offset & 0xff)]) }
}

extension Raft {
    /// Drives a node to leadership by answering its own (pre-)vote requests
    /// with grants from `voters`. Returns the update of its last step.
    @discardableResult
    mutating func forceElection(voters: [NodeName]) -> RaftUpdate {
        var update = RaftUpdate()
        var guardCount = 0
        while role == .follower && guardCount < 1000 {
            update = step(.tick)
            guardCount += 1
        }
        if role == .preCandidate {
            for voter in voters {
                update = step(.message(RaftMessage(from: voter, to: config.name, term: term + 1, kind: .preVoteResponse(granted: true))))
                if role != .preCandidate { break }
            }
        }
        if role == .candidate {
            for voter in voters {
                update = step(.message(RaftMessage(from: voter, to: config.name, term: term, kind: .voteResponse(granted: true))))
                if role == .leader { break }
            }
        }
        return update
    }

    mutating func deliver(_ from: NodeName, term messageTerm: UInt64? = nil, _ kind: RaftMessage.Kind) -> RaftUpdate {
        step(.message(RaftMessage(from: from, to: config.name, term: messageTerm ?? term, kind: kind)))
    }
}

extension RaftUpdate {
    func messages(to peer: NodeName) -> [RaftMessage] { messages.filter { $0.to == peer } }
    var appends: [(to: NodeName, prevIndex: UInt64, entries: [RaftEntry], commit: UInt64)] {
        messages.compactMap {
            if case let .append(prevIndex, _, entries, commit) = $0.kind { return ($0.to, prevIndex, entries, commit) }
            return nil
        }
    }
}
