import XCTest
@testable import NsyncServer

final class BackoffTests: XCTestCase {
    func testDelaysDoubleUpToTheCapAndResetStartsOver() {
        var backoff = Backoff(initial: 100, maximum: 5_000, jitter: 0, random: { 0 })
        XCTAssertEqual((0..<9).map { _ in backoff.next() }, [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000, 5_000])
        XCTAssertEqual(backoff.attempts, 9)
        backoff.reset()
        XCTAssertEqual(backoff.next(), 100)
        XCTAssertEqual(backoff.attempts, 1)
    }

    func testJitterStaysWithinItsFractionAndReplaysFromTheSeed() {
        let seed = LoopTestSupport.seed()
        func delays() -> [UInt64] {
            var random = LoopTestSupport.SeededRandom(seed: seed)
            var backoff = Backoff(initial: 100, maximum: 5_000, jitter: 0.5, random: { random.next() })
            return (0..<200).map { _ in backoff.next() }
        }
        let first = delays()
        XCTAssertEqual(first, delays(), "same seed, same delays")
        var nominal: UInt64 = 100
        for delay in first {
            XCTAssertTrue((nominal / 2 ... nominal).contains(delay), "\(delay) outside [\(nominal / 2), \(nominal)]")
            nominal = min(5_000, nominal * 2)
        }
        XCTAssertGreaterThan(Set(first.suffix(100)).count, 10, "jitter spreads the capped delays")
    }

    func testHugeMaximumDoesNotOverflow() {
        var backoff = Backoff(initial: 1 << 62, maximum: .max, jitter: 0, random: { 0 })
        XCTAssertEqual((0..<4).map { _ in backoff.next() }, [1 << 62, 1 << 63, .max, .max])
    }
}
