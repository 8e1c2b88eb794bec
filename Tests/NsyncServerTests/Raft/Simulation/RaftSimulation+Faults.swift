@testable import NsyncServer

/// The workload and the faults of a simulation run: proposals at random
/// nodes, partitions, heals, crashes (with torn tails) and restarts.
extension RaftSimulation {
    func proposeSomewhere() {
        let alive = nodes.indices.filter { nodes[$0].alive }
        guard !alive.isEmpty else { return }
        let node = alive[Int(random.next() % UInt64(alive.count))]
        let count = 1 + Int(random.next() % 3)
        var events: [RaftEvent] = []
        for _ in 0..<count {
            let number = proposals.count
            proposals.append(Proposal(node: node, incarnation: nodes[node].incarnation, proposedAt: now))
            unresolved += 1
            var data = ByteBuffer(capacity: 8)
            data.writeInteger(UInt64(number))
            events.append(.propose(data: data.bytes, id: ProposalID(UInt64(number))))
        }
        step(node, events: events)
    }

    func chaos() {
        let alive = nodes.indices.filter { nodes[$0].alive }
        let down = nodes.indices.filter { !nodes[$0].alive }
        switch random.next() % 10 {
        case 0, 1:
            for i in group.indices { group[i] = Int(random.next() % 2) }
        case 2:
            // Isolate the leader if there is one, so a new one must take over.
            let leader = alive.first { nodes[$0].raft!.role == .leader } ?? Int(random.next() % UInt64(nodes.count))
            for i in group.indices { group[i] = i == leader ? 1 : 0 }
        case 3, 4:
            for i in group.indices { group[i] = 0 }
        case 5, 6:
            if alive.count > 1 {
                let leader = alive.first { nodes[$0].raft!.role == .leader }
                let victim = chance(0.5) ? (leader ?? alive[0]) : alive[Int(random.next() % UInt64(alive.count))]
                crash(victim)
                queue.push(randomTime(in: 100_000...800_000), .restart(node: victim))
            }
        case 7:
            if let node = down.first { start(node) }
        default:
            break
        }
    }

    func crash(_ node: Int) {
        guard nodes[node].alive else { return }
        crashes += 1
        // A torn tail: some prefix of the unsynced writes reached the disk.
        if chance(parameters.tornRate) {
            let pending = nodes[node].writes.flatMap(\.operations)
            if !pending.isEmpty {
                let kept = Int(random.next() % UInt64(pending.count))
                for operation in pending.prefix(kept) {
                    if let violation = nodes[node].disk.apply(operation) { fail("\(nodes[node].name): \(violation)") }
                }
            }
        }
        nodes[node].writes.removeAll()
        nodes[node].diskEventAt = nil
        if fault == .forgetsDiskOnCrash { nodes[node].disk = SimulatedDisk() }
        nodes[node].raft = nil
        nodes[node].incarnation += 1
        for i in proposals.indices where proposals[i].node == node && proposals[i].outcome == nil && !proposals[i].abandoned {
            proposals[i].abandoned = true
            unresolved -= 1
        }
    }
}
