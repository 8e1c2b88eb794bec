import Foundation
import XCTest
@testable import NsyncServer

/// A seeded random run with real daemons (`ChaosRun`): file changes of
/// every kind on random nodes, several nodes changing one name at once,
/// kill -9 and SIGTERM restarts, a node cut off and healed, short random
/// pauses. At the end every node is restarted and the network healed; the
/// three trees must become identical, and no content the test wrote may be
/// lost unless the test itself replaced or removed it where it saw it
/// (`ChaosModel` says exactly what is excused and why).
///
/// NSYNC_CHAOS_SEED=n replays a run's choices (the seed is printed; an
/// even seed snapshots every 40 entries, an odd one keeps the default);
/// NSYNC_CHAOS_ROUNDS=n makes it longer, for a soak (default 250 rounds,
/// at most 30 s of changes); NSYNC_CHAOS_VERBOSE prints every change made
/// even when the run passes; NSYNC_E2E_KEEP keeps the trees and logs.
final class EndToEndChaosTests: ClusterTestCase {
    func testRandomChangesCrashesAndPartitionsConvergeWithoutLosingAWrite() throws {
        let settings = Self.settings(for: name)
        // Half the seeds snapshot every 40 entries (a node back from the dead may
        // catch up from one), half keep the default (a restart replays the
        // whole log): each stresses a different recovery path.
        let snapshots = settings.seed % 2 == 0 ? ["--snapshot-entries", "40"] : []
        print("\(name): \(snapshots.isEmpty ? "default snapshots" : snapshots.joined(separator: " "))")
        let (cluster, proxy) = try makePartitionableCluster(extraArguments: snapshots, label: "chaos", lifetime: settings.budget + 400)
        let chaos = ChaosRun(cluster: cluster, proxy: proxy, settings: settings)
        addTeardownBlock { [weak self] in
            if ProcessInfo.processInfo.environment["NSYNC_CHAOS_VERBOSE"] != nil || (self?.testRun?.totalFailureCount ?? 0) > 0 {
                print("==== chaos seed \(settings.seed): what the test did ====\n" + chaos.events.joined(separator: "\n"))
            }
        }
        let started = Date()
        try chaos.run()
        let changing = Date().timeIntervalSince(started)
        let tree: ClusterTree
        do {
            tree = try chaos.finish(timeout: 90)
        } catch {
            // Not converged (the trees may even agree while an index entry waits
            // for bytes nobody has): say which contents node1's tree lacks too.
            let first = (try? cluster.tree(0)) ?? ClusterTree()
            let partial = chaos.model.verdict(for: first)
            XCTFail("seed \(settings.seed): no convergence; meanwhile \(partial.lost.count) of \(partial.mustSurvive) contents "
                    + "that had to survive are in no file on node1:\n"
                    + partial.lost.map { describe($0, chaos.model, cluster, first) }.joined(separator: "\n"))
            throw error
        }
        let converged = Date().timeIntervalSince(started) - changing

        let verdict = chaos.model.verdict(for: tree)
        XCTAssertTrue(verdict.lost.isEmpty, """
            seed \(settings.seed): \(verdict.lost.count) of \(verdict.mustSurvive) contents that had to survive are in no file \
            of the converged tree:
            \(verdict.lost.map { describe($0, chaos.model, cluster, tree) }.joined(separator: "\n"))
            """)
        XCTAssertTrue(verdict.unknown.isEmpty, "seed \(settings.seed): files holding bytes the test never wrote "
                      + "(a torn or mixed install): \(verdict.unknown.map { "\($0) (\(tree[$0]!.size) B)" })")
        XCTAssertGreaterThan(verdict.mustSurvive, 0, "the run wrote nothing it could check")

        let excused = chaos.model.excusedCounts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        let gone = verdict.excusedGone.filter { $0.excuse?.contains("kill -9") ?? false }
        // Logged at debug, the level the tests run the daemons at.
        let extended = (0..<cluster.count).map {
            cluster.log($0).components(separatedBy: "the version held here may be its start").count - 1
        }.reduce(0, +)
        let matched = (0..<cluster.count).map {
            cluster.log($0).components(separatedBy: "were the same as the version held here").count - 1
        }.reduce(0, +)
        print("""
            chaos seed \(settings.seed): \(chaos.roundsRun) rounds in \(String(format: "%.1f", changing)) s, \
            converged \(String(format: "%.1f", converged)) s later; \(tree.count) paths, \(tree.conflictCopies.count) conflict copies
              fetches started from the bytes a node held (appends): \(extended); \
            fetches that copied blocks a node held (edits in place): \(matched)
              actions: \(chaos.counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
              contents: \(chaos.model.count) written, \(verdict.mustSurvive) had to survive and \(verdict.survived) did \
            (\(verdict.onlyInConflictCopies) only in conflict copies); \
            excused: \(excused.isEmpty ? "none" : excused); \(verdict.excusedGone.count) excused ones are gone \
            (\(gone.count) of them written just before a kill -9\(gone.isEmpty ? "" : ": " + gone.map(\.token).joined(separator: ", ")))
            """)
    }

    /// The seed (NSYNC_CHAOS_SEED, else fresh), printed; the rounds
    /// (NSYNC_CHAOS_ROUNDS, default 250) and a time budget that grows with
    /// them (a round takes about 80 ms; the budget allows 120).
    private static func settings(for test: String) -> ChaosRun.Settings {
        let environment = ProcessInfo.processInfo.environment
        let seed = environment["NSYNC_CHAOS_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64.max)
        let rounds = max(1, environment["NSYNC_CHAOS_ROUNDS"].flatMap { Int($0) } ?? 250)
        print("\(test): seed \(seed) (replay with NSYNC_CHAOS_SEED=\(seed)), \(rounds) rounds")
        return ChaosRun.Settings(seed: seed, rounds: rounds, budget: max(10, Double(rounds) * 0.12))
    }

    /// A lost content: who wrote it, where it went, what the tree has at
    /// those paths (and their conflict copies), and what the daemons logged
    /// about them.
    private func describe(_ content: ChaosModel.Content, _ model: ChaosModel, _ cluster: TestCluster, _ tree: ClusterTree) -> String {
        var text = "  \(content.token) (\(content.size) B):\n" + content.history.map { "    " + $0 }.joined(separator: "\n")
        let paths = Set(content.paths)
        let stems = paths.map { ConflictName.splitExtension($0).stem + ".sync-conflict-" }
        for path in tree.paths where paths.contains(path) || stems.contains(where: path.hasPrefix) {
            let entry = tree[path]!
            text += "\n    in the tree: \(path): \(entry)" + (model.contents[entry.hash].map { " (\($0.token))" } ?? "")
        }
        for node in 0..<cluster.count {
            let lines = cluster.log(node).split(separator: "\n").filter { line in paths.contains { line.contains($0) } }
            guard !lines.isEmpty else { continue }
            text += "\n    \(cluster.names[node]) logged (last \(min(lines.count, 25)) of \(lines.count) lines naming its paths):\n"
                + lines.suffix(25).map { "      " + $0 }.joined(separator: "\n")
        }
        return text
    }
}
