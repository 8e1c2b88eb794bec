import Foundation

/// Seeded, replayable randomness for the Wire and Index fuzz tests
/// (SplitMix64: tiny, fast, good enough to explore inputs).
struct WireTestRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

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
