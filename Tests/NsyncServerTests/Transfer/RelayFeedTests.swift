@testable import NsyncServer
import XCTest

/// What a relay sends from: chunks that just arrived, kept while a relay
/// watches and handed out whole; the file up to what is written.
final class RelayFeedTests: XCTestCase {
    private func bytes(_ offset: Int, _ count: Int) -> ArraySlice<UInt8> {
        ArraySlice((0..<count).map { UInt8(truncatingIfNeeded: offset + $0) })
    }

    private func expected(_ offset: Int, _ count: Int) -> ArraySlice<UInt8> {
        bytes(offset, count)
    }

    /// Watches a feed and counts the advances it was told of.
    private final class Watcher {
        var notified = 0
    }

    private func watch(_ feed: RelayFeed) -> Watcher {
        let watcher = Watcher()
        feed.observe(watcher) { [unowned watcher] in watcher.notified += 1 }
        return watcher
    }

    func testNothingIsKeptWithoutAWatcher() {
        let feed = RelayFeed(size: 1 << 20, temporaryPath: "/nonexistent", written: 0, arrived: 0)
        feed.arrived(offset: 0, bytes: bytes(0, 1_000))
        XCTAssertEqual(feed.available, 1_000)
        XCTAssertNil(feed.cached(offset: 0, count: 100))
    }

    func testArrivedBytesComeBackAcrossChunksAndNothingElseDoes() {
        let feed = RelayFeed(size: 1 << 20, temporaryPath: "/nonexistent", written: 0, arrived: 0)
        let watcher = watch(feed)
        feed.arrived(offset: 0, bytes: bytes(0, 1_000))
        feed.arrived(offset: 1_000, bytes: bytes(1_000, 1_000))
        XCTAssertEqual(watcher.notified, 2)
        XCTAssertEqual(feed.available, 2_000)
        XCTAssertEqual(feed.written, 0, "arrived is not written")
        XCTAssertEqual(feed.cached(offset: 900, count: 200), expected(900, 200), "across two chunks")
        XCTAssertEqual(feed.cached(offset: 0, count: 2_000), expected(0, 2_000))
        XCTAssertNil(feed.cached(offset: 1_900, count: 200), "past what arrived")
        feed.wrote(to: 2_000)
        XCTAssertEqual(feed.written, 2_000)
        XCTAssertEqual(watcher.notified, 3)
        feed.stopObserving(watcher)
        XCTAssertNil(feed.cached(offset: 0, count: 100), "dropped once nobody watches")
        XCTAssertEqual(feed.available, 2_000)
    }

    func testARangeWithinOneChunkIsThatChunksMemory() {
        let feed = RelayFeed(size: 1 << 20, temporaryPath: "/nonexistent", written: 0, arrived: 0)
        let watcher = NSObject()
        feed.observe(watcher) {}
        // As a data frame's payload: a slice of a larger array.
        let frame = Array(repeating: UInt8(0), count: 12) + expected(0, 4_096)
        feed.arrived(offset: 0, bytes: frame[12...])
        feed.arrived(offset: 4_096, bytes: bytes(4_096, 4_096))
        let within = feed.cached(offset: 100, count: 3_000)
        XCTAssertEqual(within, expected(100, 3_000))
        let shared = frame.withUnsafeBytes { frameBytes in
            within?.withUnsafeBytes { $0.baseAddress == frameBytes.baseAddress! + 12 + 100 }
        }
        XCTAssertEqual(shared, true, "relayed from the arrived chunk without a copy")
        // A relay in step asks for everything up to what arrived: the chunk's end.
        let second = feed.cached(offset: 4_096 + 100, count: 3_996)
        XCTAssertEqual(second, expected(4_096 + 100, 3_996))
        XCTAssertEqual(second?.startIndex, 100, "the arrived chunk itself, up to its end")
        XCTAssertEqual(feed.cached(offset: 4_000, count: 200), expected(4_000, 200), "across two chunks: a copy")
        XCTAssertEqual(feed.cached(offset: 4_000, count: 200)?.startIndex, 0)
    }

    func testOnlyTheLastFewMiBAreKeptAndAFailureDropsThem() {
        let size = RelayFeed.recentLimit * 2
        let feed = RelayFeed(size: UInt64(size), temporaryPath: "/nonexistent", written: 0, arrived: 0)
        let watcher = NSObject()
        feed.observe(watcher) {}
        let piece = 256 << 10
        for offset in stride(from: 0, to: size, by: piece) {
            feed.arrived(offset: UInt64(offset), bytes: bytes(offset, piece))
        }
        XCTAssertNil(feed.cached(offset: 0, count: 10), "the oldest are gone")
        XCTAssertEqual(feed.cached(offset: UInt64(size - piece), count: piece), expected(size - piece, piece))
        feed.fail()
        XCTAssertTrue(feed.failed)
        XCTAssertNil(feed.cached(offset: UInt64(size - piece), count: 10))
        feed.arrived(offset: UInt64(size), bytes: bytes(size, 10))
        XCTAssertEqual(feed.available, UInt64(size), "nothing moves after a failure")
    }

    /// Runs that arrived as `.zeros` advance what may be relayed at once and
    /// are passed on as such (their bytes are not read back from the file,
    /// where they are holes, nor kept in memory).
    func testRunsOfZerosAreRelayedAsZerosAsTheyArrive() {
        let feed = RelayFeed(size: 64 << 20, temporaryPath: "/nonexistent", written: 0, arrived: 0)
        let watcher = watch(feed)
        feed.arrived(offset: 0, bytes: bytes(0, 4_096))
        feed.arrivedZeros(offset: 4_096, length: 32 << 20)
        XCTAssertEqual(watcher.notified, 2)
        XCTAssertEqual(feed.available, 4_096 + (32 << 20), "the zeros may be relayed before they are written")
        XCTAssertNil(feed.zeros(at: 0), "bytes, not zeros")
        XCTAssertEqual(feed.zeros(at: 4_096), 32 << 20)
        XCTAssertEqual(feed.zeros(at: 4_096 + (1 << 20)), (32 << 20) - (1 << 20), "from inside the run: its rest")
        XCTAssertNil(feed.zeros(at: 4_096 + (32 << 20)), "past the run")
        XCTAssertNil(feed.cached(offset: 4_096, count: 4_096), "not kept as bytes")

        // Only the latest runs are kept.
        var offset: UInt64 = 4_096 + (32 << 20)
        for _ in 0..<RelayFeed.recentZeroRuns {
            feed.arrived(offset: offset, bytes: bytes(Int(offset), 1))
            feed.arrivedZeros(offset: offset + 1, length: 4_095)
            offset += 4_096
        }
        XCTAssertNil(feed.zeros(at: 4_096), "the first run was dropped")
        XCTAssertEqual(feed.zeros(at: offset - 4_095), 4_095)
        feed.stopObserving(watcher)
        XCTAssertNil(feed.zeros(at: offset - 4_095), "dropped once nobody watches")

        // Without a watcher, nothing is kept, but what may be relayed advances.
        let unwatched = RelayFeed(size: 1 << 20, temporaryPath: "/nonexistent", written: 0, arrived: 0)
        unwatched.arrivedZeros(offset: 0, length: 1 << 20)
        XCTAssertEqual(unwatched.available, 1 << 20)
        XCTAssertNil(unwatched.zeros(at: 0))
    }
}
