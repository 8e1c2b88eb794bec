import Foundation
import Logging
import XCTest
@testable import NsyncServer

/// `Fetcher.prepare`: reading done before a fetch asks a holder runs in
/// steps on the pool, with its progress listed (what `nsyncd status`
/// shows) between them; a step that fails closes what the state holds.
final class FetcherPreparationTests: XCTestCase {
    /// Counts `close()` calls across the pool thread and the test's.
    final class Closes: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        func add() { lock.withLock { count += 1 } }
        var value: Int { lock.withLock { count } }
    }

    struct Steps: Fetcher.PreparationState {
        var total: UInt64 = 30
        var done: UInt64 = 0
        let closes: Closes
        func close() { closes.add() }
    }

    private func makeFetcher(_ loop: EventLoop) -> Fetcher {
        Fetcher(loop: loop, root: NSTemporaryDirectory(), temporaryDirectory: NSTemporaryDirectory(), leftovers: [],
                logger: Logger(label: "test"),
                hooks: .init(fetched: { _ in }, failed: { _, _, _ in }, answerOffer: { _ in .decline }, heldFile: { _ in nil }, holders: { _ in [] }))
    }

    private func transfer(_ path: String) -> Fetcher.Transfer {
        let record = FileRecord(path: path, version: 5, kind: .file, size: 30, mode: 0o644, mtime: 0, hash: [],
                                origin: "n1", holders: ["n1"])
        return Fetcher.Transfer(record: record, expected: nil, temporaryPath: NSTemporaryDirectory() + "/unused.part")
    }

    func testStepsRunOneAfterAnotherAndTheirProgressIsListedUntilTheEnd() throws {
        let loop = try EventLoop()
        defer { loop.close() }
        let fetcher = makeFetcher(loop)
        let closes = Closes()
        var result: Result<Steps, Error>?
        fetcher.prepare(transfer("big.img"), .hashingBlocks, state: Steps(closes: closes)) { state in
            usleep(100_000)
            state.done += 10
            return state.done < state.total
        } finish: { result = $0 }

        XCTAssertEqual(fetcher.preparations.first?.preparation.stage, .hashingBlocks)
        XCTAssertEqual(fetcher.preparations.first?.preparation.done, 0)
        var seen: [UInt64] = []
        XCTAssertTrue(loop.run(until: {
            if let done = fetcher.preparations.first?.preparation.done, seen.last != done { seen.append(done) }
            return result != nil
        }, timeout: 5_000))
        XCTAssertEqual(seen, [0, 10, 20], "the progress of each step but the last, in order")
        XCTAssertEqual(try result?.get().done, 30)
        XCTAssertTrue(fetcher.preparations.isEmpty, "listed only while it runs")
        XCTAssertEqual(closes.value, 0, "a state that succeeded is the caller's to keep")
    }

    func testAFailedStepClosesItsStateAndEndsThePreparation() throws {
        let loop = try EventLoop()
        defer { loop.close() }
        let fetcher = makeFetcher(loop)
        let closes = Closes()
        var result: Result<Steps, Error>?
        fetcher.prepare(transfer("db.sqlite"), .copyingHeld, state: Steps(closes: closes)) { state in
            state.done += 10
            if state.done == 20 { throw SystemError(errno: EIO, operation: "read", path: "db.sqlite") }
            return true
        } finish: { result = $0 }
        XCTAssertTrue(loop.run(until: { result != nil }, timeout: 5_000))
        XCTAssertThrowsError(try result?.get()) { XCTAssertEqual(($0 as? SystemError)?.errno, EIO, "\($0)") }
        XCTAssertEqual(closes.value, 1, "what the failed step's state held is closed once")
        XCTAssertTrue(fetcher.preparations.isEmpty)
    }
}
