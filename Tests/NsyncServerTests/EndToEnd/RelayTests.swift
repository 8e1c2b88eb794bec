import Foundation
import XCTest

/// Large files leave their origin once: the holder sends the second
/// receiver to the first, which relays the file as it arrives. Every node
/// dials the others through a `PartitionProxy`, whose byte counters show
/// which node sent what, and which can cut the relay's own source mid-way.
final class EndToEndRelayTests: ClusterTestCase {
    /// Bytes node `from` received from node `to`'s file port so far.
    private func received(_ proxy: PartitionProxy, _ from: Int, _ to: Int) -> Int {
        proxy.counters(PartitionProxy.Route(from: from, to: to, port: .file)).back
    }

    func testALargeFileLeavesItsOriginOnceAndTheSecondReceiverGetsItRelayed() throws {
        let (cluster, proxy) = try makePartitionableCluster(label: "relay")
        try cluster.write(0, "warm.txt", "every channel is up\n")
        try cluster.waitUntilConverged()
        let before = (0..<3).map { a in (0..<3).map { b in a == b ? 0 : received(proxy, a, b) } }
        var random = ClusterRandom(seed: 0x7e1a7)
        let size = 40 << 20  // relayed (16 MiB and more), not offered early (under 64 MiB)
        let bytes = random.bytes(size + 12_345)
        try cluster.write(0, "big.bin", bytes)
        try cluster.waitUntilConverged(timeout: 60)
        for node in 1...2 { XCTAssertEqual(cluster.read(node, "big.bin"), bytes, "big.bin on node\(node + 1)") }

        let delta = { (a: Int, b: Int) in self.received(proxy, a, b) - before[a][b] }
        let fromOrigin = delta(1, 0) + delta(2, 0)
        let relayed = max(delta(1, 2), delta(2, 1))
        print("relay: node2 got \(delta(1, 0)) B from node1 and \(delta(1, 2)) B from node3; "
              + "node3 got \(delta(2, 0)) B from node1 and \(delta(2, 1)) B from node2")
        XCTAssertLessThan(fromOrigin, bytes.count + bytes.count / 4, "node1 sent big.bin about once, not once per receiver")
        XCTAssertGreaterThan(relayed, bytes.count * 3 / 4, "one receiver relayed big.bin to the other")
        XCTAssertTrue(cluster.log(0).contains("for big.bin (version"), "node1 logged the redirect")
        XCTAssertEqual(cluster.temporaryFiles(1), [:], "nothing left in node2's .nsync/tmp")
        XCTAssertEqual(cluster.temporaryFiles(2), [:], "nothing left in node3's .nsync/tmp")
    }

    /// The relaying node loses its own source mid-file (its link to the
    /// origin's file port falls silent): the node it relays to resumes from
    /// the origin with what it has, and the relay gets the file from it.
    func testAReceiverWhoseRelayLosesItsSourceResumesFromTheOrigin() throws {
        let (cluster, proxy) = try makePartitionableCluster(extraArguments: ["--peer-timeout", "2"], label: "relay-cut")
        try cluster.write(0, "warm.txt", "every channel is up\n")
        try cluster.waitUntilConverged()
        let before = (0..<3).map { a in (0..<3).map { b in a == b ? 0 : received(proxy, a, b) } }
        let delta = { (a: Int, b: Int) in self.received(proxy, a, b) - before[a][b] }
        var random = ClusterRandom(seed: 0xc0ffee)
        let bytes = random.bytes((200 << 20) + 777)  // offered early too: relayed as version 0
        try cluster.write(0, "huge.bin", bytes)

        // The receiver served by node1 is the relay; cut its source once it is under way.
        let relay = try cluster.poll("a receiver to be getting huge.bin from node1", timeout: 30) { () -> Int? in
            [1, 2].first { delta($0, 0) > 16 << 20 }
        }
        let downstream = relay == 1 ? 2 : 1
        let cut = PartitionProxy.Route(from: relay, to: 0, port: .file)
        try proxy.cut([cut])
        usleep(100_000)  // bytes already in the proxy's hands when the cut came are counted
        let relayedBeforeCut = delta(downstream, relay)
        // Until its silent source is given up (2 s), the relay's status shows the stream it relays.
        let sending = try cluster.status(relay).sending ?? []
        XCTAssertTrue(sending.contains { $0.path == "huge.bin" && $0.to == cluster.names[downstream] && $0.relayed },
                      "node\(relay + 1) shows it relays huge.bin to node\(downstream + 1): \(sending)")
        try cluster.poll("huge.bin on both receivers while the relay cannot reach node1's file port", timeout: 90) { () -> Bool? in
            cluster.read(1, "huge.bin") == bytes && cluster.read(2, "huge.bin") == bytes ? true : nil
        }
        print("relay cut: node\(relay + 1) relayed \(relayedBeforeCut) B before its source was cut; "
              + "node\(downstream + 1) then got \(delta(downstream, 0)) B from node1 in all, node\(relay + 1) got "
              + "\(delta(relay, downstream)) B from node\(downstream + 1)")
        // Keepalives move a few bytes a second on every channel: count MiB.
        XCTAssertGreaterThan(relayedBeforeCut, 4 << 20, "node\(downstream + 1) was relayed to by node\(relay + 1) before the cut")
        XCTAssertLessThan(relayedBeforeCut, bytes.count, "the cut came while the relay was under way")
        XCTAssertGreaterThan(delta(downstream, 0), 4 << 20, "node\(downstream + 1) resumed from node1")
        XCTAssertGreaterThan(delta(relay, downstream), 4 << 20, "node\(relay + 1) got the rest from node\(downstream + 1)")
        try proxy.heal()
        try cluster.waitUntilConverged(timeout: 60)
    }

    /// A relay whose source falls silent stalls the stream it relays until
    /// the peer timeout; a file written on the relay meanwhile still reaches
    /// the node it relays to at once, on that very channel.
    func testAnEditOnAStalledRelayIsNotHeldUpBehindTheStreamItRelays() throws {
        let (cluster, proxy) = try makePartitionableCluster(extraArguments: ["--peer-timeout", "30"], label: "relay-stall")
        try cluster.write(0, "warm.txt", "every channel is up\n")
        try cluster.waitUntilConverged()
        let before = (0..<3).map { a in (0..<3).map { b in a == b ? 0 : received(proxy, a, b) } }
        let delta = { (a: Int, b: Int) in self.received(proxy, a, b) - before[a][b] }
        var random = ClusterRandom(seed: 0x57a11)
        let bytes = random.bytes((160 << 20) + 5)
        try cluster.write(0, "huge.bin", bytes)
        let relay = try cluster.poll("a receiver to relay huge.bin to the other", timeout: 30) { () -> Int? in
            [1, 2].first { delta($0, 0) > 16 << 20 && delta($0 == 1 ? 2 : 1, $0) > 1 << 20 }
        }
        let downstream = relay == 1 ? 2 : 1
        try proxy.cut([PartitionProxy.Route(from: relay, to: 0, port: .file)])
        usleep(100_000)
        let stalledAt = delta(downstream, relay)
        let edit = "written on the relay while its stream stalls \(UUID().uuidString)\n"
        try cluster.write(relay, "edit.txt", edit)
        let started = Date()
        try cluster.poll("edit.txt on node\(downstream + 1) (the peer timeout is 30 s)", timeout: 15) { () -> Bool? in
            cluster.readText(downstream, "edit.txt") == edit ? true : nil
        }
        print("relay stall: edit.txt reached node\(downstream + 1) \(String(format: "%.2f", Date().timeIntervalSince(started))) s "
              + "after it was written, while node\(relay + 1)'s relay of huge.bin stood at \(stalledAt) B")
        XCTAssertNil(cluster.read(downstream, "huge.bin"), "huge.bin was complete before the edit came")
        let sending = try cluster.status(relay).sending ?? []
        XCTAssertTrue(sending.contains { $0.path == "huge.bin" && $0.to == cluster.names[downstream] && $0.relayed },
                      "node\(relay + 1) still relays huge.bin to node\(downstream + 1): \(sending)")
        try proxy.heal()
        try cluster.waitUntilConverged(timeout: 90)
        for node in 0..<3 { XCTAssertEqual(cluster.read(node, "huge.bin"), bytes, "huge.bin on node\(node + 1)") }
    }

    /// Four nodes: the origin sends the file to the first receiver only; the
    /// second relays from the first and the third from the second.
    func testAChainOfThreeReceiversGetsTheFileFromTheOriginOnce() throws {
        let cluster = try makeCluster(nodes: 4, label: "relay-chain")
        var random = ClusterRandom(seed: 0xc4a1)
        let bytes = random.bytes((48 << 20) + 99)
        try cluster.write(0, "chain.bin", bytes)
        try cluster.waitUntilConverged(timeout: 60)
        for node in 1...3 { XCTAssertEqual(cluster.read(node, "chain.bin"), bytes, "chain.bin on node\(node + 1)") }
        let redirects = cluster.log(0).components(separatedBy: " for chain.bin (version").count - 1
        let relays = (1...3).map { cluster.log($0).components(separatedBy: "relaying chain.bin").count - 1 }
        print("relay chain: node1 sent \(redirects) receivers along the chain; relays per receiver \(relays)")
        XCTAssertEqual(redirects, 2, "node1 served one receiver and sent the two others along the chain")
        XCTAssertEqual(relays.reduce(0, +), 2, "two receivers relayed (the first and the second of the chain)")
        XCTAssertEqual(relays.filter { $0 > 0 }.count, 2, "each relay served one other receiver")
    }
}
