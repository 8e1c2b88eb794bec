import Foundation
import XCTest
@testable import NsyncServer

/// A network partition with real daemons: every node reaches the others
/// through a `PartitionProxy`, the leader is cut off (alive, taking local
/// writes, silent on the network, no connection closed) for longer than a
/// proposal lives, both sides change files, and after the heal everything
/// converges with nothing lost.
final class EndToEndPartitionTests: ClusterTestCase {
    func testIsolatedLeaderKeepsItsWritesAndTakesTheMajoritysAfterTheHeal() throws {
        let (cluster, proxy) = try makePartitionableCluster(label: "partition")
        try cluster.write(0, "a.txt", "a as first written\n")
        try cluster.write(0, "b.txt", "b as first written\n")
        try cluster.write(0, "c.txt", "c, deleted by the majority\n")
        try cluster.write(0, "keep.txt", "touched by nobody\n")
        try cluster.waitUntilConverged()

        let isolated = try cluster.waitForLeader()
        let oldTerm = try cluster.status(isolated).term
        let majority = (0..<cluster.count).filter { $0 != isolated }
        let (m0, m1) = (majority[0], majority[1])
        let name = { (node: Int) in cluster.names[node] }
        let mine = (a: "a edited on \(name(isolated)), cut off\n", b: "b edited on \(name(isolated)), cut off\n",
                    new: "made on \(name(isolated)), cut off\n", late: "made on \(name(isolated)), cut off and leaderless\n")
        let theirs = (a: "a edited on \(name(m0)) in the majority\n", new0: "made on \(name(m0)) in the majority\n",
                      new1: "made on \(name(m1)) in the majority\n", inside: "inside a directory made on \(name(m0))\n")

        let expiredBefore = cluster.log(isolated).components(separatedBy: Self.expiredProposal).count
        try proxy.cut(isolated)
        let cutAt = Date()
        // Taken while it still believes it leads: appended to its own log, never committed.
        try cluster.write(isolated, "isolated-only.txt", mine.new)
        try cluster.write(isolated, "a.txt", mine.a)
        try cluster.write(m0, "a.txt", theirs.a)
        try cluster.write(m0, "majority-1.txt", theirs.new0)
        try cluster.write(m1, "majority-2.txt", theirs.new1)
        try cluster.remove(m1, "c.txt")
        try cluster.makeDirectory(m0, "made-in-majority")
        try cluster.write(m0, "made-in-majority/inside.txt", theirs.inside)

        // The majority elects a leader of its own, in a higher term.
        var last = ""
        let newLeader = try cluster.poll("a leader among \(name(m0)) and \(name(m1)) in a term above \(oldTerm)",
                                         timeout: 15, detail: { last }) { () -> Int? in
            guard let s0 = try? cluster.status(m0, timeout: 1), let s1 = try? cluster.status(m1, timeout: 1) else { return nil }
            last = [s0, s1].map { "\($0.name): \($0.role), term \($0.term), leader \($0.leader ?? "-")" }.joined(separator: "; ")
            guard let leader = s0.leader, s1.leader == leader, s0.term == s1.term, s0.term > oldTerm,
                  let index = majority.first(where: { name($0) == leader }),
                  (index == m0 ? s0 : s1).role == "leader" else { return nil }
            return index
        }
        let elected = Date().timeIntervalSince(cutAt)
        let newTerm = try cluster.status(newLeader).term

        // The majority agrees on its own changes, and has none of the isolated node's.
        let expectedOnMajority: [String: String?] = [
            "a.txt": theirs.a, "b.txt": "b as first written\n", "c.txt": nil, "keep.txt": "touched by nobody\n",
            "majority-1.txt": theirs.new0, "majority-2.txt": theirs.new1, "made-in-majority/inside.txt": theirs.inside,
            "isolated-only.txt": nil,
        ]
        _ = try cluster.poll("\(name(m0)) and \(name(m1)) to agree on the majority's changes", timeout: 30,
                             detail: { last }) { () -> Bool? in
            guard let t0 = try? cluster.tree(m0), let t1 = try? cluster.tree(m1) else { return nil }
            if t0 != t1 {
                last = t0.differences(to: t1, name: name(m0), otherName: name(m1)).joined(separator: "\n")
                return nil
            }
            for (path, text) in expectedOnMajority where cluster.readText(m0, path) != text {
                let found = cluster.readText(m0, path).map { "\"\($0)\"" } ?? "missing"
                last = "\(path) on \(name(m0)) is \(found), expected \(text.map { "\"\($0)\"" } ?? "nothing")"
                return nil
            }
            for node in majority {
                guard let s = try? cluster.status(node, timeout: 1) else { return nil }
                if s.pendingFiles > 0 || s.pendingAnnouncements > 0 {
                    last = "\(s.name): \(s.pendingFiles) files to fetch, \(s.pendingAnnouncements) changes not committed"
                    return nil
                }
            }
            return true
        }
        let majoritySettled = Date().timeIntervalSince(cutAt)

        // The isolated node stops claiming to lead (check-quorum) and keeps
        // its changes uncommitted; what it takes now waits for a leader.
        let steppedDown = try cluster.poll("\(name(isolated)) to step down, its changes uncommitted", timeout: 10,
                                           detail: { last }) { () -> NodeStatus? in
            guard let s = try? cluster.status(isolated, timeout: 1) else { return nil }
            last = "\(s.name): \(s.role), term \(s.term), leader \(s.leader ?? "-"), \(s.pendingAnnouncements) changes not committed"
            return s.role != "leader" && s.leader == nil && s.pendingAnnouncements > 0 ? s : nil
        }
        XCTAssertEqual(steppedDown.term, oldTerm, "pre-vote keeps the cut-off node's term where it was")
        try cluster.write(isolated, "b.txt", mine.b)
        try cluster.write(isolated, "isolated-late.txt", mine.late)

        // A partition longer than the proposal timeout (5 s): the entries it
        // appended as leader expire and are queued again. Only the log tells
        // (the status shows no proposals in flight).
        let held = try cluster.poll("\(name(isolated))'s proposals made as leader to expire, and its 4 changes to wait",
                                    timeout: 20, detail: { last }) { () -> NodeStatus? in
            guard let s = try? cluster.status(isolated, timeout: 1) else { return nil }
            let expired = cluster.log(isolated).components(separatedBy: Self.expiredProposal).count - expiredBefore
            last = "\(expired) proposals expired; \(s.name): \(s.role), leader \(s.leader ?? "-"), "
                + "\(s.pendingAnnouncements) changes not committed"
            return expired > 0 && s.pendingAnnouncements >= 4 ? s : nil
        }
        XCTAssertNil(held.leader, "\(name(isolated)) knows no leader while cut off")
        for node in majority {
            for path in ["isolated-only.txt", "isolated-late.txt"] {
                XCTAssertNil(cluster.readText(node, path), "\(name(node)) has no \(path) of the cut-off node")
            }
            XCTAssertEqual(cluster.readText(node, "a.txt"), theirs.a, "\(name(node)) has the majority's a.txt only")
            XCTAssertEqual(cluster.readText(node, "b.txt"), "b as first written\n", "\(name(node)) has no edit of the cut-off node")
            let s = try cluster.status(node)
            XCTAssertEqual(s.leader, name(newLeader), "\(name(node)) still follows the majority's leader")
            XCTAssertEqual(s.term, newTerm)
        }
        XCTAssertEqual(cluster.readText(isolated, "a.txt"), mine.a, "the cut-off node keeps its own edit meanwhile")
        XCTAssertEqual(cluster.readText(isolated, "c.txt"), "c, deleted by the majority\n", "no delete crosses the cut")
        XCTAssertNil(cluster.readText(isolated, "majority-1.txt"), "no file of the majority crosses the cut")
        let cutFor = Date().timeIntervalSince(cutAt)

        try proxy.heal()
        let healedAt = Date()
        let tree = try cluster.waitUntilConverged(timeout: 60)
        let converged = Date().timeIntervalSince(healedAt)

        // Both sides' changes are everywhere; the concurrent edit of a.txt survives on both sides.
        let copies = tree.paths.filter { $0.hasPrefix("a.sync-conflict-") && $0.hasSuffix(".txt") }
        XCTAssertEqual(copies.count, 1, "one conflict copy of a.txt: \(tree.paths)")
        XCTAssertEqual(tree.conflictCopies, copies, "no conflict but a.txt's")
        let copy = copies.first ?? "(no copy)"
        XCTAssertEqual(Set(tree.paths), Set(["a.txt", copy, "b.txt", "keep.txt", "isolated-only.txt", "isolated-late.txt",
                                             "majority-1.txt", "majority-2.txt", "made-in-majority", "made-in-majority/inside.txt"]))
        XCTAssertEqual(tree["made-in-majority"]?.kind, .directory)
        for node in 0..<cluster.count {
            let on = "on \(name(node))"
            XCTAssertEqual(cluster.readText(node, "isolated-only.txt"), mine.new, on)
            XCTAssertEqual(cluster.readText(node, "isolated-late.txt"), mine.late, on)
            XCTAssertEqual(cluster.readText(node, "b.txt"), mine.b, "the cut-off node's edit of b.txt \(on)")
            XCTAssertEqual(cluster.readText(node, "majority-1.txt"), theirs.new0, on)
            XCTAssertEqual(cluster.readText(node, "majority-2.txt"), theirs.new1, on)
            XCTAssertEqual(cluster.readText(node, "made-in-majority/inside.txt"), theirs.inside, on)
            XCTAssertEqual(cluster.readText(node, "keep.txt"), "touched by nobody\n", on)
            XCTAssertNil(cluster.readText(node, "c.txt"), "the majority's delete holds \(on)")
            let both = [cluster.readText(node, "a.txt"), cluster.readText(node, copy)]
            XCTAssertEqual(Set(both), Set([mine.a, theirs.a]), "a.txt and \(copy) hold both edits \(on)")
        }
        // a.sync-conflict-YYYYMMDD-HHMMSS-NODE.txt, NODE the one whose edit it holds.
        let parts = copy.dropFirst("a.sync-conflict-".count).dropLast(".txt".count).split(separator: "-").map(String.init)
        XCTAssertEqual(parts.count, 3, "\(copy) has the shape a.sync-conflict-YYYYMMDD-HHMMSS-NODE.txt")
        if parts.count == 3 {
            XCTAssertTrue(parts[0].count == 8 && parts[1].count == 6 && (parts[0] + parts[1]).allSatisfy(\.isNumber), copy)
            let loser = cluster.names.firstIndex(of: parts[2])
            XCTAssertNotNil(loser, "\(copy) names a node")
            if let loser {
                XCTAssertEqual(cluster.readText(loser, copy), loser == isolated ? mine.a : theirs.a, "\(copy) holds \(parts[2])'s edit")
            }
        }
        XCTAssertEqual(try cluster.waitForLeader(), newLeader, "the healed node does not unseat the majority's leader")
        XCTAssertEqual(try cluster.status(newLeader).term, newTerm, "nor raise the term")

        print("partition: \(name(isolated)) (leader, term \(oldTerm)) cut off; \(name(newLeader)) elected in term \(newTerm) "
              + String(format: "%.2f s later, majority settled after %.2f s; healed after %.1f s, ", elected, majoritySettled, cutFor)
              + String(format: "all converged %.2f s later; ", converged) + "a.txt's other edit kept as \(copy)")
    }

    /// A holder whose file port falls silent (a firewall dropping that
    /// traffic: nothing arrives, nothing is closed) while the raft links stay
    /// up. The fetches sent to it on the channels made before must not wait
    /// on it forever: the channels are closed once silent for the peer
    /// timeout, status names the files no reachable node holds, and each
    /// fetch goes to the first other node that holds the file.
    func testFetchesStuckOnASilentHolderMoveToAnotherHolder() throws {
        let (cluster, proxy) = try makePartitionableCluster(extraArguments: ["--peer-timeout", "2"], label: "silent-holder")
        try cluster.write(0, "warm.txt", "every channel is up\n")
        try cluster.waitUntilConverged()
        let silentFor = [1, 2].map { PartitionProxy.Route(from: $0, to: 0, port: .file) }
        try proxy.cut(silentFor)
        let node1ToNode3Before = proxy.counters(silentFor[1]).back
        var random = ClusterRandom(seed: 0x51_1e47)
        let bytes = random.bytes((8 << 20) + 4_321)
        try cluster.write(0, "big.bin", bytes)

        // node2 and node3 asked node1 on the channels they had; both fall silent.
        var last = ""
        let stuck = try cluster.poll("node3 to report big.bin unavailable", timeout: 20, detail: { last }) { () -> NodeStatus.Unavailable? in
            guard let s = try? cluster.status(2, timeout: 1) else { return nil }
            last = "node3: \(s.unavailableFiles ?? -1) unavailable \(s.unavailable ?? []), transfers \(s.transfers.map(\.path))"
            return s.unavailable?.first { $0.path == "big.bin" }
        }
        XCTAssertEqual(stuck.holders, ["node1"])
        let behind = try cluster.status(2)
        XCTAssertEqual(behind.notHeldFiles, 1, "node3's status counts big.bin as not held here")
        XCTAssertEqual(behind.notHeldBytes, UInt64(bytes.count))
        XCTAssertTrue(stuck.reason.contains("no connection to a node holding it"), stuck.reason)
        XCTAssertTrue(cluster.log(2).contains("heard nothing from node1"), "node3 closed its silent channel to node1")
        let rendered = try cluster.runCommand(["status", cluster.path(2)], timeout: 10).output
        XCTAssertTrue(rendered.contains("cannot fetch now: 1 files"), rendered)
        XCTAssertTrue(rendered.contains("big.bin (version \(stuck.version)): no connection to a node holding it (node1)"), rendered)
        XCTAssertNil(cluster.read(1, "big.bin"), "node2 cannot have it yet")
        XCTAssertNil(cluster.read(2, "big.bin"), "node3 cannot have it yet")

        // node2 reaches node1 again; node3 still cannot, and gets it from node2.
        try proxy.heal([silentFor[0]])
        try cluster.poll("big.bin on node2 and node3 while node3 still cannot reach node1's file port", timeout: 30,
                         detail: { last }) { () -> Bool? in
            let s = try? cluster.status(2, timeout: 1)
            last = "node3: \(s.map { "\($0.unavailable ?? [])" } ?? "?")"
            return cluster.read(1, "big.bin") == bytes && cluster.read(2, "big.bin") == bytes ? true : nil
        }
        try cluster.poll("node3's status to list nothing unavailable", timeout: 10) { () -> Bool? in
            (try? cluster.status(2, timeout: 1)).map { $0.unavailableFiles == 0 && $0.unavailable?.isEmpty == true } == true ? true : nil
        }
        XCTAssertEqual(proxy.counters(silentFor[1]).back, node1ToNode3Before,
                       "not a byte of node1's file port reached node3: it fetched from node2")
        try proxy.heal()
        try cluster.waitUntilConverged()
        for node in 0..<cluster.count { XCTAssertEqual(try cluster.status(node).notHeldFiles, 0, "node\(node + 1)") }
    }

    /// What a node logs (debug) when a proposal it appended as leader
    /// expires after it lost leadership.
    private static let expiredProposal = "failed: the leader lost leadership before it committed"
}
