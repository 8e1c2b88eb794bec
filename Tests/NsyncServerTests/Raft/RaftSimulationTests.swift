import Foundation
import XCTest
@testable import NsyncServer

/// Thousands of seeded, simulated 3- and 5-node clusters under faults (see
/// `RaftSimulation`). NSYNC_SIM_SEEDS=n runs more seeds; NSYNC_SIM_SEED=n
/// replays one (NSYNC_SIM_VERBOSE=1 prints each seed's statistics,
/// NSYNC_SIM_TRACE_MS=t prints every message delivered from t ms on).
/// Seeds run on two threads; each run is independent and deterministic.
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
        let traceAfter = environment["NSYNC_SIM_TRACE_MS"].flatMap { UInt64($0) }.map { $0 * 1000 }
        let workers = seeds.count > 1 ? 2 : 1

        let crashNote = SimulationCrashNote(workers: workers)
        defer { crashNote.uninstall() }

        let lock = NSLock()
        var nextSeed = 0
        var failures: [(seed: UInt64, report: String)] = []
        var steps = 0, messages = 0, crashes = 0, snapshots = 0, proposals = 0, committed = 0
        let started = Date()
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            while true {
                lock.lock()
                guard nextSeed < seeds.count, failures.count < 5 else {
                    lock.unlock()
                    return
                }
                let seed = seeds[nextSeed]
                nextSeed += 1
                lock.unlock()

                crashNote.set(worker: worker, seed: seed)
                let simulation = RaftSimulation(seed: seed)
                simulation.traceAfter = traceAfter
                let failure = simulation.run()

                lock.lock()
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
                    failures.append((seed, report))
                }
                lock.unlock()
            }
        }
        let elapsed = Date().timeIntervalSince(started)
        print("Raft simulation: \(seeds.count) seeds in \(String(format: "%.1f", elapsed)) s on \(workers) threads: \(steps) steps, \(messages) messages, \(crashes) crashes, \(snapshots) snapshots installed, \(committed)/\(proposals) proposals committed")
        XCTAssertTrue(failures.isEmpty, failures.sorted { $0.seed < $1.seed }.map(\.report).joined(separator: "\n"))
        XCTAssertGreaterThan(snapshots, 0, "the runs should exercise snapshot installation")
    }

    /// The invariants have teeth: a driver that breaks the durability contract
    /// is caught within a bounded number of seeds.
    func testSimulationCatchesADriverThatForgetsItsDiskOnCrash() {
        XCTAssertNotNil(firstFailure(with: .forgetsDiskOnCrash, seeds: 0..<400), "amnesia on crash went unnoticed")
    }

    /// (Caught at seed 27 of 400 while a leader ignored rejections of what
    /// a follower had acknowledged; at seed 519 since it probes back, as a
    /// follower that lost its log needs: 1,000 seeds, a few seconds.)
    func testSimulationCatchesADriverThatSendsBeforePersisting() {
        XCTAssertNotNil(firstFailure(with: .sendsBeforePersisting, seeds: 0..<1_000), "early sends went unnoticed")
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

/// If the process dies inside a seed (a failed precondition in the core is a
/// trap, not a test failure), a signal handler prints the seeds that were
/// running so they can be replayed. Fixed buffers, written per worker, read by
/// the handler with one write(2).
private final class SimulationCrashNote {
    private static let slotBytes = 160
    private static var buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 4 * slotBytes)
    private static var used = 0
    private var previous: [Int32: sighandler_t?] = [:]

    init(workers: Int) {
        Self.buffer.initialize(repeating: UInt8(ascii: " "))
        Self.used = min(workers, 4) * Self.slotBytes
        for signal in [SIGILL, SIGTRAP] {
            previous[signal] = Glibc.signal(signal) { number in
                _ = write(2, SimulationCrashNote.buffer.baseAddress, SimulationCrashNote.used)
                Glibc.signal(number, SIG_DFL)
                raise(number)
            }
        }
    }

    func set(worker: Int, seed: UInt64) {
        guard worker < 4 else { return }
        let line = Array("\nRaft simulation crashed in seed \(seed); replay: NSYNC_SIM_SEED=\(seed) swift test --skip-build --filter RaftSimulationTests".utf8.prefix(Self.slotBytes - 1)) + [10]
        let start = worker * Self.slotBytes
        for i in 0..<Self.slotBytes { Self.buffer[start + i] = i < line.count ? line[i] : UInt8(ascii: " ") }
    }

    func uninstall() {
        for (signal, handler) in previous { Glibc.signal(signal, handler ?? SIG_DFL) }
    }
}
