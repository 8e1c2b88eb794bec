import XCTest
@testable import NsyncServer

/// Every node applies the same entries and must reach the same state.
final class FileIndexDeterminismTests: XCTestCase {
    /// Node A applies the commands as built; node B applies them as decoded
    /// from their entry bytes and is restarted from a snapshot midway. Every
    /// outcome and the final state must be identical, and iteration stays in
    /// path byte order through small and large batches.
    func testSameCommandSequenceGivesTheSameStateOnEveryNode() throws {
        let seed = WireTestRandom.fuzzSeed("FileIndex determinism")
        var scenario = IndexScenario(seed: seed, pathCount: 300, includeInvalid: true)
        var nodeA = FileIndex()
        var nodeB = FileIndex()
        var outcomeCounts: [String: Int] = [:]
        for entry in UInt64(1)...800 {
            // Every 10th entry is a big batch (past the in-place ordering threshold).
            let command = scenario.command(in: nodeA, maxChanges: entry % 10 == 0 ? 200 : 20)
            let outcomesA = nodeA.apply(command, at: entry)
            for outcome in outcomesA {
                let name = "\(outcome)".prefix { $0 != "(" }
                outcomeCounts[String(name), default: 0] += 1
            }
            let decoded: IndexCommand
            do {
                decoded = try IndexCommand(decoding: command.encoded())
            } catch {
                // Only a command carrying an invalid path is refused on decode.
                XCTAssertTrue(command.changes.contains { IndexPath.violation(in: $0.path) != nil }, "seed \(seed): \(error)")
                XCTAssertTrue(outcomesA.contains { if case .invalid = $0 { true } else { false } })
                nodeB = nodeA  // B took the same decision through another route; keep going from A's state.
                continue
            }
            XCTAssertEqual(decoded, command)
            let outcomesB = nodeB.apply(decoded, at: entry)
            XCTAssertEqual(outcomesA, outcomesB, "entry \(entry), seed \(seed)")
            if entry == 400 { nodeB = try FileIndex(snapshotData: nodeB.snapshotData()) }
            if testRun?.failureCount ?? 0 > 0 { return XCTFail("stopped at entry \(entry); replay with NSYNC_FUZZ_SEED=\(seed)") }
        }
        XCTAssertEqual(nodeA, nodeB)
        XCTAssertEqual(nodeA.snapshotData(), nodeB.snapshotData())
        let keys = Array(nodeA).map { PathKey($0.path) }
        XCTAssertEqual(keys.count, nodeA.count)
        XCTAssertEqual(keys, keys.sorted())
        XCTAssertEqual(Set(keys).count, keys.count)
        print("FileIndex determinism: outcomes \(outcomeCounts.sorted { $0.key < $1.key }), \(nodeA.count) records")
        // The workload must really exercise every rule, or this test proves little.
        for name in ["accepted", "alreadyCurrent", "rejected", "stale", "invalid"] {
            XCTAssertGreaterThan(outcomeCounts[name] ?? 0, 0, "no \(name) outcome in the workload")
        }
    }
}
