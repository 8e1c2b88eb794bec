import Foundation
import XCTest
@testable import NsyncServer

/// What the simulation prints if the process dies inside a seed (a failed
/// precondition in the core), so the seed can still be replayed.
private var simulationCrashNote: [UInt8] = []

/// Thousands of seeded, simulated 3- and 5-node clusters under faults (see
/// `RaftSimulation`). NSYNC_SIM_SEEDS=n runs more seeds; NSYNC_SIM_SEED=n
/// replays one (NSYNC_SIM_VERBOSE=1 prints each seed's statistics).
final class RaftSimulationTests: XCTestCase {
    func testSeededClustersUnderFaultsKeepRaftSafeAndLive() {
        let environment = ProcessInfo.processInfo.environment
        let seeds: [UInt64]
        if let one = environment["NSYNC_SIM_SEED"].flatMap({ UInt64($0) }) {
            seeds = [one]
        } else {
            seeds = Array(0..<UInt64(environment["NSYNC_SIM_SEEDS"].flatMap { Int($0) } ?? 2000))
        }
        let verbose = environment["NSYNC_SIM_VERBOSE"] != nil

        let previousIll = signal(SIGILL) { _ in
            simulationCrashNote.withUnsafeBufferPointer { _ = write(2, $0.baseAddress, $0.count) }
            signal(SIGILL, SIG_DFL)
            raise(SIGILL)
        }
        let previousTrap = signal(SIGTRAP) { _ in
            simulationCrashNote.withUnsafeBufferPointer { _ = write(2, $0.baseAddress, $0.count) }
            signal(SIGTRAP, SIG_DFL)
            raise(SIGTRAP)
        }
        defer {
            signal(SIGILL, previousIll)
            signal(SIGTRAP, previousTrap)
        }

        let started = Date()
        var failures: [String] = []
        var steps = 0, messages = 0, crashes = 0, snapshots = 0, proposals = 0, committed = 0
        for seed in seeds {
            simulationCrashNote = Array("\nRaft simulation crashed in seed \(seed); replay: NSYNC_SIM_SEED=\(seed) swift test --skip-build --filter RaftSimulationTests\n".utf8)
            let simulation = RaftSimulation(seed: seed)
            simulation.traceAfter = environment["NSYNC_SIM_TRACE_MS"].flatMap { UInt64($0) }.map { $0 * 1000 }
            let failure = simulation.run()
            steps += simulation.steps
            messages += simulation.messagesSent
            crashes += simulation.crashes
            snapshots += simulation.snapshotsInstalled
            proposals += simulation.proposals.count
            committed += simulation.commandAt.count
            if verbose {
                print("seed \(seed): \(simulation.parameters); \(simulation.steps) steps, \(simulation.messagesSent) messages, \(simulation.crashes) crashes, \(simulation.snapshotsInstalled) snapshots installed, \(simulation.commandAt.count)/\(simulation.proposals.count) proposals committed")
            }
            if let failure {
                let report = "seed \(seed) (\(simulation.parameters)) failed: \(failure)\n    replay: NSYNC_SIM_SEED=\(seed) swift test --skip-build --filter RaftSimulationTests"
                print(report)
                failures.append(report)
                if failures.count >= 5 { break }
            }
        }
        let elapsed = Date().timeIntervalSince(started)
        print("Raft simulation: \(seeds.count) seeds in \(String(format: "%.1f", elapsed)) s: \(steps) steps, \(messages) messages, \(crashes) crashes, \(snapshots) snapshots installed, \(committed)/\(proposals) proposals committed")
        XCTAssertTrue(failures.isEmpty, failures.joined(separator: "\n"))
        XCTAssertGreaterThan(snapshots, 0, "the runs should exercise snapshot installation")
    }

    /// The invariants have teeth: a driver that breaks the durability contract
    /// is caught within a bounded number of seeds.
    func testSimulationCatchesADriverThatForgetsItsDiskOnCrash() {
        XCTAssertNotNil(firstFailure(with: .forgetsDiskOnCrash, seeds: 0..<400), "amnesia on crash went unnoticed")
    }

    func testSimulationCatchesADriverThatSendsBeforePersisting() {
        XCTAssertNotNil(firstFailure(with: .sendsBeforePersisting, seeds: 0..<400), "early sends went unnoticed")
    }

    private func firstFailure(with fault: RaftSimulation.Fault, seeds: Range<UInt64>) -> String? {
        for seed in seeds {
            if let failure = RaftSimulation(seed: seed, fault: fault).run() {
                print("fault \(fault) caught by seed \(seed) of \(seeds.count): \(failure)")
                return failure
            }
        }
        return nil
    }
}
