@testable import NsyncServer

/// One seeded run of a simulated Raft cluster (3 or 5 cores) on a simulated
/// network and disk: messages are dropped, duplicated, delayed and
/// reordered; the cluster is partitioned and healed; nodes crash (losing
/// unsynced writes, sometimes keeping a torn prefix of them) and restart;
/// clocks tick at slightly different rates; proposals arrive throughout;
/// snapshots are taken and logs compacted. Invariants are checked after every
/// step (RaftSimulation+Invariants.swift). The same seed replays the same run.
/// Single-threaded: one run per instance.
final class RaftSimulation {
    /// Everything the seed decides about a run.
    struct Parameters: CustomStringConvertible {
        var nodeCount: Int
        var dropRate: Double
        var duplicateRate: Double
        var latency: ClosedRange<UInt64>
        var spikeRate: Double
        var diskLatency: ClosedRange<UInt64>
        var tornRate: Double
        var chaosInterval: ClosedRange<UInt64>
        var proposalInterval: ClosedRange<UInt64>
        var chaosDuration: UInt64
        var config: (inout RaftConfig) -> Void

        var description: String {
            "\(nodeCount) nodes, drop \(Int(dropRate * 100))%, dup \(Int(duplicateRate * 100))%, latency \(latency) us, disk \(diskLatency) us"
        }
    }

    /// A deliberately broken driver, to prove the invariants catch real bugs.
    enum Fault {
        case none
        /// A crash wipes the node's disk (its vote and log are forgotten).
        case forgetsDiskOnCrash
        /// Messages go out before the writes they depend on are durable.
        case sendsBeforePersisting
    }

    enum Event {
        case tick(node: Int, incarnation: Int)
        case deliver(RaftMessage, to: Int)
        case diskDone(node: Int, incarnation: Int)
        case createSnapshot(node: Int, incarnation: Int)
        case restart(node: Int)
        case propose
        case chaos
        case heal
    }

    /// An update on its way to disk, with the messages that wait for it.
    struct PendingWrite {
        var operations: [SimulatedDisk.Operation]
        var messages: [RaftMessage]
        var ack: RaftEvent?
        var doneAt: UInt64
    }

    /// One simulated machine. A class so the hot path mutates it in place
    /// (a debug build copies large structs on every array access).
    final class Node {
        let name: NodeName
        let config: RaftConfig
        var raft: Raft? {
            didSet { alive = raft != nil }
        }
        /// Whether the node is up (kept apart so checking it does not copy `raft`).
        private(set) var alive = false
        var incarnation = 0
        var disk = SimulatedDisk()
        var writes: [PendingWrite] = []
        var diskEventAt: UInt64?
        var machine = SimulatedStateMachine()
        let tickPeriod: UInt64
        var commitSeen: UInt64 = 0
        var wasLeader = false
        var snapshotPending = false

        init(name: NodeName, config: RaftConfig, tickPeriod: UInt64) {
            self.name = name
            self.config = config
            self.tickPeriod = tickPeriod
        }
    }

    struct Proposal {
        let node: Int
        let incarnation: Int
        let proposedAt: UInt64
        var outcome: ProposalOutcome?
        var committedAt: UInt64?
        var abandoned = false
    }

    static let tick: UInt64 = 50_000

    let seed: UInt64
    let fault: Fault
    let parameters: Parameters
    var random: RaftRandom
    var now: UInt64 = 0
    var queue = SimulationEventQueue()
    var nodes: [Node] = []
    var nodeIndex: [NodeName: Int] = [:]
    var group: [Int]
    var healed = false
    let healTime: UInt64
    let stopProposalsAt: UInt64
    let endTime: UInt64
    var leaderAfterHealAt: UInt64?
    /// When every node held the same fully committed and applied log, after
    /// the last proposal had its outcome: the run ends there.
    var quietAt: UInt64?
    var proposals: [Proposal] = []
    /// Proposals on live nodes still waiting for their outcome.
    var unresolved = 0
    var failure: String?
    /// Prints every delivered message from this time on (debugging a seed).
    var traceAfter: UInt64?

    // Invariant state (see RaftSimulation+Invariants.swift).
    var leaderOfTerm: [UInt64: Int] = [:]
    var entryFacts: [EntryKey: EntryFact] = [:]
    var committedTerm: [UInt64] = [0]
    var chainAt: [UInt64?] = [nil]
    var commandAt: [Int: UInt64] = [:]

    // Statistics for the report.
    var steps = 0
    var messagesSent = 0
    var crashes = 0
    var snapshotsInstalled = 0

    init(seed: UInt64, fault: Fault = .none) {
        self.seed = seed
        self.fault = fault
        var random = RaftRandom(seed: seed &* 0x2545_F491_4F6C_DD1D &+ 1)
        let nodeCount = seed % 2 == 0 ? 3 : 5
        let inflight = 1 + Int(random.next() % 4)
        let appendBytes = 32 + Int(random.next() % 224)
        let threshold = 8 + random.next() % 24
        let trailing = random.next() % 5
        let chunk = 32 + Int(random.next() % 64)
        parameters = Parameters(
            nodeCount: nodeCount,
            dropRate: Double(random.next() % 11) / 100,
            duplicateRate: Double(random.next() % 6) / 100,
            latency: 200...(1_000 + random.next() % 8_000),
            spikeRate: 0.02,
            // A quarter of the seeds get a slow disk: crashes then find many
            // writes in flight, which is where durability bugs hide.
            diskLatency: random.next() % 4 == 0 ? 2_000...(10_000 + random.next() % 30_000) : 100...(500 + random.next() % 4_000),
            tornRate: 0.5,
            chaosInterval: random.next() % 4 == 0 ? 50_000...200_000 : 150_000...500_000,
            proposalInterval: 10_000...(40_000 + random.next() % 80_000),
            chaosDuration: 2_000_000,
            config: { config in
                config.heartbeatTicks = 1
                config.electionTicks = 6...12
                config.maxInflightAppends = inflight
                config.maxAppendBytes = appendBytes
                config.snapshotThresholdEntries = threshold
                config.compactionTrailingEntries = trailing
                config.snapshotChunkBytes = chunk
                config.snapshotRetryTicks = 10
                config.proposalTimeoutTicks = 20
            })
        self.random = random
        group = Array(repeating: 0, count: nodeCount)
        healTime = parameters.chaosDuration
        stopProposalsAt = healTime + 300_000
        // Normally the cluster is quiet within a few hundred ms of the last
        // proposal and the run stops there; a backlog (slow disk, one entry per
        // append) may take longer, but never this long.
        endTime = stopProposalsAt + 6_000_000
        let names = (0..<nodeCount).map { "n\($0)" }
        for (i, name) in names.enumerated() {
            var config = RaftConfig(name: name, peers: names)
            config.randomSeed = seed &* 31 &+ UInt64(i)
            parameters.config(&config)
            // Clock skew: each node's tick runs up to 10% fast or slow.
            let skew = Int64(self.random.next() % 10_001) - 5_000
            nodes.append(Node(name: name, config: config, tickPeriod: UInt64(Int64(Self.tick) + skew)))
            nodeIndex[name] = i
        }
    }

    /// Runs the seed to the end; returns the first invariant violation, if any.
    func run() -> String? {
        for i in nodes.indices { start(i) }
        queue.push(randomTime(in: parameters.proposalInterval), .propose)
        queue.push(randomTime(in: parameters.chaosInterval), .chaos)
        queue.push(healTime, .heal)
        while failure == nil, quietAt == nil, let (time, event) = queue.pop(), time <= endTime {
            now = time
            handle(event)
        }
        if failure == nil { checkEnd() }
        return failure
    }

    func fail(_ message: String) {
        if failure == nil { failure = "t=\(now / 1000)ms: \(message)" }
    }

    func randomTime(in range: ClosedRange<UInt64>) -> UInt64 {
        now + range.lowerBound + random.next() % (range.upperBound - range.lowerBound + 1)
    }

    func chance(_ probability: Double) -> Bool {
        Double(random.next() % 1_000_000) < probability * 1_000_000
    }

    // MARK: events

    private func handle(_ event: Event) {
        switch event {
        case let .tick(node, incarnation):
            guard nodes[node].alive, nodes[node].incarnation == incarnation else { return }
            step(node, .tick)
            queue.push(now + nodes[node].tickPeriod, .tick(node: node, incarnation: incarnation))
            if healed && leaderAfterHealAt == nil && hasStableLeader() { leaderAfterHealAt = now }
            if now > stopProposalsAt && leaderAfterHealAt != nil && isQuiet() { quietAt = now }
        case let .deliver(message, to):
            guard nodes[to].alive else { return }
            if traceAfter.map({ now >= $0 }) ?? false { print("\(now / 1000)ms \(message.from)->\(message.to) t\(message.term) \(message.kind)".prefix(220)) }
            if !healed, let from = index(of: message.from), group[from] != group[to] { return }
            step(to, .message(message))
        case let .diskDone(node, incarnation):
            guard nodes[node].alive, nodes[node].incarnation == incarnation else { return }
            nodes[node].diskEventAt = nil
            completeWrites(node)
        case let .createSnapshot(node, incarnation):
            guard nodes[node].alive, nodes[node].incarnation == incarnation else { return }
            nodes[node].snapshotPending = false
            let snapshot = nodes[node].machine.snapshot(members: nodes[node].raft!.members)
            nodes[node].disk.saveCreatedSnapshot(snapshot)
            step(node, .snapshotCreated(snapshot))
        case let .restart(node):
            if !nodes[node].alive { start(node) }
        case .propose:
            proposeSomewhere()
            if now < stopProposalsAt { queue.push(randomTime(in: parameters.proposalInterval), .propose) }
        case .chaos:
            guard !healed else { return }
            chaos()
            queue.push(randomTime(in: parameters.chaosInterval), .chaos)
        case .heal:
            healed = true
            for i in group.indices { group[i] = 0 }
            for i in nodes.indices where !nodes[i].alive { start(i) }
        }
    }

    func index(of name: NodeName) -> Int? {
        nodeIndex[name]
    }

    // MARK: nodes

    func start(_ node: Int) {
        do {
            let raft = try Raft(config: nodes[node].config, recovered: nodes[node].disk.recovered())
            guard let machine = SimulatedStateMachine(restoring: nodes[node].disk.snapshot) else {
                fail("\(nodes[node].name): stored snapshot does not decode")
                return
            }
            nodes[node].raft = raft
            nodes[node].machine = machine
            nodes[node].commitSeen = raft.snapshotIndex
            nodes[node].wasLeader = false
            nodes[node].snapshotPending = false
            if let snapshot = nodes[node].disk.snapshot { checkInstalledSnapshot(node, snapshot) }
            let firstTick = now + random.next() % nodes[node].tickPeriod
            queue.push(firstTick, .tick(node: node, incarnation: nodes[node].incarnation))
        } catch {
            fail("\(nodes[node].name) cannot restart from its disk: \(error)")
        }
    }

    /// Steps events into a node and carries out the update like the real driver.
    func step(_ node: Int, _ event: RaftEvent) {
        let update = nodes[node].raft!.step(event)
        process(node, update)
    }

    func step(_ node: Int, events: [RaftEvent]) {
        let update = nodes[node].raft!.step(events)
        process(node, update)
    }

    private func process(_ node: Int, _ update: RaftUpdate) {
        steps += 1
        checkAfterStep(node, update)
        if let snapshot = update.snapshot {
            guard let restored = SimulatedStateMachine(restoring: snapshot) else {
                fail("\(nodes[node].name): snapshot from the leader does not decode")
                return
            }
            nodes[node].machine = restored
            snapshotsInstalled += 1
            checkInstalledSnapshot(node, snapshot)
        }
        for entry in update.committedEntries { apply(entry, on: node) }
        for result in update.outcomes { checkOutcome(result, on: node) }
        if update.wantsSnapshot && !nodes[node].snapshotPending {
            nodes[node].snapshotPending = true
            queue.push(randomTime(in: 1_000...5_000), .createSnapshot(node: node, incarnation: nodes[node].incarnation))
        }
        let operations = SimulatedDisk.operations(of: update)
        if !operations.isEmpty {
            // Group commit: writes arriving while a flush is in progress share
            // the next flush, which starts when the current one completes.
            var latency = randomTime(in: parameters.diskLatency) - now
            if chance(0.01) { latency += 20_000 }
            let doneAt: UInt64
            if let first = nodes[node].writes.first?.doneAt, let last = nodes[node].writes.last?.doneAt {
                doneAt = last > first ? last : first + latency
            } else {
                doneAt = now + latency
            }
            var messages = update.messages
            if fault == .sendsBeforePersisting {
                send(messages)
                messages = []
            }
            let write = PendingWrite(operations: operations, messages: messages, ack: update.persistedEvent, doneAt: doneAt)
            nodes[node].writes.append(write)
            scheduleDisk(node)
        } else if !update.messages.isEmpty {
            if nodes[node].writes.isEmpty {
                send(update.messages)
            } else {
                nodes[node].writes[nodes[node].writes.count - 1].messages += update.messages
            }
        }
    }

    private func scheduleDisk(_ node: Int) {
        guard nodes[node].diskEventAt == nil, let first = nodes[node].writes.first else { return }
        nodes[node].diskEventAt = first.doneAt
        queue.push(first.doneAt, .diskDone(node: node, incarnation: nodes[node].incarnation))
    }

    /// Group commit: every write due by now becomes durable, then its messages go out.
    private func completeWrites(_ node: Int) {
        var ack: RaftEvent?
        var done = 0
        while done < nodes[node].writes.count, nodes[node].writes[done].doneAt <= now {
            let write = nodes[node].writes[done]
            for operation in write.operations {
                if let violation = nodes[node].disk.apply(operation) { fail("\(nodes[node].name): \(violation)") }
            }
            send(write.messages)
            if let writeAck = write.ack { ack = writeAck }
            done += 1
        }
        nodes[node].writes.removeFirst(done)
        scheduleDisk(node)
        if let ack { step(node, ack) }
    }

    private func send(_ messages: [RaftMessage]) {
        for message in messages {
            messagesSent += 1
            guard let to = index(of: message.to) else {
                fail("message to unknown node \(message.to)")
                return
            }
            if !healed && chance(parameters.dropRate) { continue }
            queue.push(deliveryTime(), .deliver(message, to: to))
            if !healed && chance(parameters.duplicateRate) { queue.push(deliveryTime(), .deliver(message, to: to)) }
        }
    }

    private func deliveryTime() -> UInt64 {
        var time = randomTime(in: parameters.latency)
        if chance(parameters.spikeRate) { time += random.next() % 60_000 }
        return time
    }

    /// Every proposal has its outcome and every node holds the same log, all
    /// of it committed and applied.
    func isQuiet() -> Bool {
        if unresolved > 0 { return false }
        guard let first = nodes[0].raft else { return false }
        let last = first.log.lastIndex
        for node in nodes {
            guard let raft = node.raft, raft.log.lastIndex == last, raft.log.term(at: last) == first.log.term(at: last),
                  raft.commitIndex == last, node.machine.appliedIndex == last else { return false }
        }
        return true
    }

    /// Some leader is followed by every node at its term.
    func hasStableLeader() -> Bool {
        guard let leader = nodes.indices.first(where: { nodes[$0].raft?.role == .leader }) else { return false }
        let term = nodes[leader].raft!.term
        for node in nodes {
            guard let raft = node.raft, raft.term == term, raft.leader == nodes[leader].name else { return false }
        }
        return true
    }
}
