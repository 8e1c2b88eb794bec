import Foundation
@testable import NsyncServer

/// Seeded, replayable randomness for the Wire and Index fuzz tests
/// (SplitMix64: tiny, fast, good enough to explore inputs).
struct WireTestRandom: RandomNumberGenerator {
    /// The product's own seeded source (SplitMix64), so a seed means the same everywhere.
    private var source: RaftRandom

    init(seed: UInt64) { source = RaftRandom(seed: seed) }

    mutating func next() -> UInt64 { source.next() }

    /// Uniform in `0..<bound` (bound > 0); cheap modulo, bias irrelevant here.
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
    }

    /// The seed for a fuzz test: NSYNC_FUZZ_SEED when set (to replay a run),
    /// else a fresh one. Printed either way so any failure can be replayed.
    static func fuzzSeed(_ test: String) -> UInt64 {
        let seed: UInt64
        if let text = ProcessInfo.processInfo.environment["NSYNC_FUZZ_SEED"], let value = UInt64(text) {
            seed = value
        } else {
            seed = UInt64.random(in: 0...UInt64.max)
        }
        print("\(test): seed \(seed) (replay with NSYNC_FUZZ_SEED=\(seed))")
        return seed
    }
}
