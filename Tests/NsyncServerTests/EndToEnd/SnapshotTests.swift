import Foundation
import XCTest
@testable import NsyncServer

/// With a tiny snapshot threshold (`--snapshot-entries 20`) the index is
/// snapshotted and the Raft log compacted every few rounds of changes: sync
/// goes on through every cycle, a node that was down across them catches up
/// from the leader's snapshot (InstallSnapshot), and a cluster restarted
/// after compaction recovers its index from disk. Nsync's consensus died at
/// its first snapshot.
final class EndToEndSnapshotTests: ClusterTestCase {
    static let arguments = ["--snapshot-entries", "20"]

    func testSyncContinuesThroughSnapshotCyclesAndANodeDownAcrossThemCatchesUpFromASnapshot() throws {
        let cluster = try makeCluster(extraArguments: Self.arguments, label: "snap")
        var rounds = Rounds()
        try rounds.run(cluster, writers: [0, 1, 2], count: 1)
        try cluster.waitUntilConverged()

        try cluster.kill(2, signal: SIGKILL)
        let missedSnapshots = try rounds.runUntilSnapshotsAdvance(cluster, times: 3, on: [0, 1], writers: [0, 1])
        let leader = try cluster.waitForLeader()
        let compactedPast = try cluster.status(leader).snapshotIndex

        let restarted = Date()
        try cluster.restart(2)
        try cluster.waitForLeader()
        var tree = try cluster.waitUntilConverged()
        let catchUp = Date().timeIntervalSince(restarted)
        rounds.assertMatches(tree)
        let restoredLine = cluster.log(2).components(separatedBy: "\n").last { $0.contains("index restored from a snapshot") }
        XCTAssertNotNil(restoredLine, "node3 caught up through InstallSnapshot:\n\(cluster.logTail(2))")
        XCTAssertGreaterThanOrEqual(try cluster.status(2).snapshotIndex, compactedPast,
                                    "node3 now has at least the snapshot it was sent")

        // The node that installed a snapshot takes its own from there on, and sync goes on.
        let after = try rounds.runUntilSnapshotsAdvance(cluster, times: 1, on: [0, 1, 2], writers: [2, 0, 1])
        tree = try cluster.waitUntilConverged()
        rounds.assertMatches(tree)
        print("snapshot cycles: \(missedSnapshots) rounds while node3 was down (snapshot at \(compactedPast) when it came back), "
              + String(format: "caught up in %.1f s; ", catchUp) + "\(after) more rounds with it; \(restoredLine ?? "-")")
    }

    func testClusterRestartedAfterSeveralSnapshotsRecoversItsIndexAndKeepsSyncing() throws {
        let cluster = try makeCluster(extraArguments: Self.arguments, label: "snap")
        var rounds = Rounds()
        try rounds.runUntilSnapshotsAdvance(cluster, times: 3, on: [0, 1, 2], writers: [0, 1, 2])
        try cluster.waitUntilConverged()
        let before = try (0..<cluster.count).map { try cluster.status($0) }

        for node in 0..<cluster.count { try cluster.kill(node, signal: node == 1 ? SIGKILL : SIGTERM) }
        for node in 0..<cluster.count { try cluster.restart(node) }
        try cluster.waitForLeader()
        for node in 0..<cluster.count {
            XCTAssertGreaterThanOrEqual(try cluster.status(node).snapshotIndex, before[node].snapshotIndex,
                                        "node\(node + 1) starts from its own snapshot")
            try eventually(cluster, "node\(node + 1) to apply again all it had applied") {
                try cluster.status(node).appliedIndex >= before[node].appliedIndex
            }
        }

        try rounds.run(cluster, writers: [1, 2, 0], count: 3)
        rounds.assertMatches(try cluster.waitUntilConverged())
    }

    /// Rounds of changes spread over the writers — a new file, an edit of
    /// one shared file, the deletion of an older round's file — each waited
    /// for on every running node, so each is its own few Raft entries. Keeps
    /// the expected tree. The test's thread.
    private struct Rounds {
        var number = 0
        /// Path -> content of every file that should exist.
        var model: [String: String] = [:]

        mutating func run(_ cluster: TestCluster, writers: [Int], count: Int) throws {
            for _ in 0..<count { try runOne(cluster, writer: writers[number % writers.count]) }
        }

        private mutating func runOne(_ cluster: TestCluster, writer: Int) throws {
            let round = number
            number += 1
            let created = "rounds/r\(round).txt"
            model[created] = "round \(round) from node\(writer + 1)\n"
            try cluster.write(writer, created, model[created]!)
            model["counter.txt"] = "\(round)\n"
            try cluster.write(writer, "counter.txt", model["counter.txt"]!)
            let old = "rounds/r\(round - 3).txt"
            if model.removeValue(forKey: old) != nil { try cluster.remove(writer, old) }
            let running = (0..<cluster.count).filter { cluster.members[$0].isRunning }
            _ = try cluster.poll("round \(round) on every running node", timeout: 20) { () -> Bool? in
                running.allSatisfy { node in
                    cluster.readText(node, "counter.txt") == model["counter.txt"] && cluster.readText(node, created) == model[created]
                        && cluster.read(node, old) == nil
                } ? true : nil
            }
        }

        /// Runs rounds until every node in `nodes` has reported `times` new
        /// snapshot indexes (at most 80 rounds); returns how many rounds ran.
        @discardableResult
        mutating func runUntilSnapshotsAdvance(_ cluster: TestCluster, times: Int, on nodes: [Int], writers: [Int]) throws -> Int {
            var seen = try nodes.map { Set([try cluster.status($0).snapshotIndex]) }
            var ran = 0
            while seen.contains(where: { $0.count <= times }) {
                guard ran < 80 else {
                    throw cluster.failure("80 rounds of changes and the snapshot indexes seen are only \(seen.map { $0.sorted() })")
                }
                try run(cluster, writers: writers, count: 1)
                ran += 1
                for (i, node) in nodes.enumerated() { seen[i].insert(try cluster.status(node).snapshotIndex) }
            }
            return ran
        }

        func assertMatches(_ tree: ClusterTree, file: StaticString = #filePath, line: UInt = #line) {
            let files = tree.paths.filter { tree[$0]?.kind == .file }
            XCTAssertEqual(files, model.keys.sorted(), file: file, line: line)
            for (path, content) in model {
                XCTAssertEqual(tree[path]?.hash, SHA256.hex(SHA256.hash(Array(content.utf8))), path, file: file, line: line)
            }
        }
    }
}
