import Foundation
import XCTest
@testable import NsyncServer

/// Seeded multi-node runs of the reconciler (see `ReconcilerSimulation`):
/// after random user operations and a run to quiescence, every node must
/// have converged and no user content may be lost.
///
/// "Nothing lost", exactly: each user write makes a unique content (the
/// "same bytes on two nodes" operation shares one content between two writes
/// of the same path). A content is *superseded* when a user overwrites,
/// replaces or removes it on a disk that holds it, on any node: that user saw
/// it and chose to drop it. At the end, every content written and not
/// superseded must be on every node's disk, at some path (its own, or a
/// conflict copy's). The reconciler's own removals and overwrites never
/// supersede: those are exactly the losses this test is for. Renames move a
/// content and supersede nothing.
///
/// Converged, exactly: every node applied the whole log; all indexes are
/// equal; no tombstone is left (each was held by all, then forgotten); every
/// live record is held by every node; each node's disk has exactly the live
/// records' paths, each with the record's kind, mode and bytes (or target);
/// each manifest entry names the record's version; no reconciler has work
/// pending. And no conflict copy is asked for whose bytes equal the winner's
/// (copies that merely raced the index adopting the same bytes are counted).
///
/// NSYNC_RECON_SEEDS=n runs n seeds (default 500); NSYNC_RECON_SEED=s replays
/// one (NSYNC_RECON_TRACE=1 prints its whole trace). NSYNC_RECON_NO_RESTARTS,
/// NSYNC_RECON_NO_AMBIGUOUS narrow a failure down; NSYNC_RECON_KIND_CHANGES
/// runs the first test with the names of the second; NSYNC_RECON_PRINT_SEEDS
/// prints each seed before it runs, NSYNC_RECON_TRACE_LIVE each event as it
/// happens (a seed that never ends).
final class ReconcilerSimulationTests: XCTestCase {
    func seeds() -> [UInt64] {
        let environment = ProcessInfo.processInfo.environment
        if let text = environment["NSYNC_RECON_SEED"], let seed = UInt64(text) { return [seed] }
        let count = environment["NSYNC_RECON_SEEDS"].flatMap { Int($0) } ?? 500
        let base = UInt64.random(in: 0...(UInt64.max / 2))
        print("ReconcilerSimulationTests: seeds \(base)..<\(base + UInt64(count)) (replay one with NSYNC_RECON_SEED=n)")
        return (0..<UInt64(count)).map { base + $0 }
    }

    func run(_ options: ReconcilerSimulation.Options, label: String) {
        let start = Date()
        var failedSeeds: [UInt64] = []
        var totals = (steps: 0, entries: 0, conflicts: 0, lateIdentical: 0)
        let announce = ProcessInfo.processInfo.environment["NSYNC_RECON_PRINT_SEEDS"] != nil
        for seed in seeds() {
            if announce { print("seed \(seed)") }
            let simulation = Self.simulate(seed: seed, options: options, tracing: false)
            totals.steps += simulation.steps
            totals.entries += simulation.log.count
            totals.lateIdentical += simulation.lateIdenticalCopies
            totals.conflicts += simulation.nodes.reduce(0) { $0 + $1.disk.paths.filter { $0.contains(".sync-conflict-") }.count }
            guard !simulation.failures.isEmpty else { continue }
            failedSeeds.append(seed)
            if failedSeeds.count <= 1 {
                let traced = Self.simulate(seed: seed, options: options, tracing: true)
                let whole = ProcessInfo.processInfo.environment["NSYNC_RECON_TRACE"] != nil
                print("--- \(label) seed \(seed): \(whole ? "all" : "last") events")
                print(traced.trace.lines.suffix(whole ? Int.max : 150).joined(separator: "\n"))
                print("--- final disks / index")
                for node in simulation.nodes {
                    print("\(node.name): " + node.disk.paths.map { "\($0)=\(simulation.describe(node.disk[$0]))" }.joined(separator: " "))
                }
                for record in simulation.nodes[0].index { print("  \(record.path) \(simulation.describe(record))") }
            }
            XCTFail("\(label) seed \(seed) (replay: NSYNC_RECON_SEED=\(seed)): " + simulation.failures.prefix(5).joined(separator: "; "))
            if failedSeeds.count >= 5 { break }
        }
        print("\(label): \(totals.steps) steps, \(totals.entries) log entries, \(totals.conflicts) conflict copies "
              + "(\(totals.lateIdentical) made after the index adopted the same bytes), "
              + "\(String(format: "%.2f", Date().timeIntervalSince(start))) s; failing seeds: \(failedSeeds)")
    }

    /// Runs one seed to quiescence and checks it.
    static func simulate(seed: UInt64, options: ReconcilerSimulation.Options, tracing: Bool) -> ReconcilerSimulation {
        var simulation = ReconcilerSimulation(seed: seed, options: options)
        simulation.trace.enabled = tracing || ReconcilerSimulation.traceLive
        if !simulation.run() { simulation.fail("did not settle within the step bound (a livelock)") }
        simulation.check()
        return simulation
    }

    func options() -> ReconcilerSimulation.Options {
        var options = ReconcilerSimulation.Options()
        let environment = ProcessInfo.processInfo.environment
        if environment["NSYNC_RECON_NO_RESTARTS"] != nil { options.restarts = false }
        if environment["NSYNC_RECON_NO_AMBIGUOUS"] != nil { options.ambiguousFailures = false }
        if environment["NSYNC_RECON_KIND_CHANGES"] != nil { options.kindChanges = true }
        return options
    }

    func testNodesConvergeAndKeepEveryUserWrite() {
        run(options(), label: "reconciler simulation")
    }

    /// Names that are a file on one node and a directory (or a file inside
    /// one) on another, at the same time: the index stays a tree (its shape
    /// rule), the loser's side becomes a conflict copy, nothing is lost.
    func testNodesConvergeWhenNamesChangeKind() {
        var options = options()
        options.kindChanges = true
        run(options, label: "reconciler simulation with kind changes")
    }
}
