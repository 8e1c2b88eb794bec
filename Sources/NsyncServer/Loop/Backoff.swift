/// Delays between reconnection attempts: exponential from `initial` to
/// `maximum` milliseconds, each delay drawn from [(1 - jitter) × d, d] so
/// nodes that lost a peer together do not retry in lockstep. The random
/// source is injected so tests replay a seed. A value; owned by one connection.
public struct Backoff {
    public let initial: UInt64
    public let maximum: UInt64
    public let jitter: Double
    private var random: () -> UInt64
    private var current: UInt64
    /// Delays handed out since the last `reset()`.
    public private(set) var attempts = 0

    /// - Parameter random: uniformly distributed 64-bit values (default: the system generator).
    public init(initial: UInt64 = 100, maximum: UInt64 = 5_000, jitter: Double = 0.5,
                random: @escaping () -> UInt64 = { UInt64.random(in: .min ... .max) }) {
        precondition(initial > 0 && maximum >= initial && (0...1).contains(jitter))
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self.random = random
        current = initial
    }

    /// The delay before the next attempt, in ms; the one after it doubles (up to `maximum`).
    public mutating func next() -> UInt64 {
        let delay = current
        current = min(maximum, current.multipliedReportingOverflow(by: 2).overflow ? maximum : current * 2)
        attempts += 1
        let unit = Double(random() >> 11) / Double(1 << 53)   // [0, 1)
        return delay - UInt64(Double(delay) * jitter * unit)
    }

    /// After a successful connection: the next failure starts from `initial` again.
    public mutating func reset() {
        current = initial
        attempts = 0
    }
}
