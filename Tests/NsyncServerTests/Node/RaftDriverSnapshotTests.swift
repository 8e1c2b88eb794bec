import Foundation
import Logging
import XCTest
@testable import NsyncServer

/// The driver encodes its own snapshot on the thread pool. A leader's
/// snapshot installed while that encode runs makes it stale: it must be
/// dropped, not handed to storage (which refuses an older snapshot, and the
/// node would stop on the refusal).
final class RaftDriverSnapshotTests: XCTestCase {
    /// What the hooks saw, on the loop thread; the encode's flag from the pool.
    final class Seen: @unchecked Sendable {
        private let lock = NSLock()
        private var encodedFlag = false
        var fatal: [String] = []
        var restored: [UInt64] = []
        var applied = 0
        var encoded: Bool {
            get { lock.lock(); defer { lock.unlock() }; return encodedFlag }
            set { lock.lock(); encodedFlag = newValue; lock.unlock() }
        }
    }

    func testALeadersSnapshotInstalledDuringTheOwnEncodeWinsAndTheNodeGoesOn() throws {
        let dir = try StorageScratchDirectory("driver-stale-snapshot")
        let (storage, recovered) = try RaftStorage.open(directory: dir.raft)
        var config = RaftConfig(name: "n1", peers: ["n2", "n3"])
        config.snapshotThresholdEntries = 5
        config.compactionTrailingEntries = 1
        let raft = try Raft(config: config, recovered: RaftRecoveredState(
            hardState: recovered.hardState, snapshot: recovered.snapshot, entries: recovered.entries))
        let loop = try EventLoop()
        let seen = Seen()
        let gate = DispatchSemaphore(value: 0)
        let hooks = RaftDriver.Hooks(
            send: { _ in },
            restore: { seen.restored.append($0.metadata.index) },
            apply: { seen.applied += $0.count },
            snapshotEncoder: {
                { () -> [UInt8] in
                    // Held until the leader's snapshot is in.
                    _ = gate.wait(timeout: .now() + 30)
                    seen.encoded = true
                    return [1, 2, 3]
                }
            },
            statusChanged: { _ in },
            fatal: { seen.fatal.append($0) })
        let driver = RaftDriver(raft: raft, storage: storage, recoveredSnapshot: nil, loop: loop, hooks: hooks,
                                logger: Logger(label: "driver-test"))
        defer { driver.stop() }

        // n2 leads and replicates 6 entries, all committed: past the threshold, n1 starts its own snapshot.
        let entries = (1...6).map { RaftEntry(term: 1, index: UInt64($0), data: [UInt8($0)]) }
        driver.receive(RaftMessage(from: "n2", to: "n1", term: 1,
                                   kind: .append(prevIndex: 0, prevTerm: 0, entries: entries, commit: 6)))
        XCTAssertTrue(loop.run(until: { seen.applied == 6 && driver.isIdle }, timeout: 10_000))

        // Meanwhile the leader compacted past it and sends its own snapshot at 20.
        let leaders = SnapshotMetadata(index: 20, term: 1, members: ["n1", "n2", "n3"])
        driver.receive(RaftMessage(from: "n2", to: "n1", term: 1,
                                   kind: .installSnapshot(SnapshotChunk(metadata: leaders, offset: 0, data: [9, 9], done: true))))
        XCTAssertTrue(loop.run(until: { seen.restored == [20] && driver.isIdle }, timeout: 10_000))
        XCTAssertEqual(storage.snapshotIndex, 20)

        // The own encode (of index 6) ends now: dropped.
        gate.signal()
        XCTAssertTrue(loop.run(until: { seen.encoded }, timeout: 10_000))
        _ = loop.run(until: { false }, timeout: 300)
        XCTAssertTrue(driver.isIdle)
        XCTAssertEqual(seen.fatal, [], "a stale snapshot of its own must not stop the node")
        XCTAssertEqual(storage.snapshotIndex, 20)
        XCTAssertEqual(driver.raft.snapshotIndex, 20)

        // And it goes on: entries after the leader's snapshot are taken and applied.
        driver.receive(RaftMessage(from: "n2", to: "n1", term: 1, kind: .append(
            prevIndex: 20, prevTerm: 1, entries: [RaftEntry(term: 1, index: 21, data: [21])], commit: 21)))
        XCTAssertTrue(loop.run(until: { seen.applied == 7 && driver.isIdle }, timeout: 10_000))
        XCTAssertEqual(seen.fatal, [])
    }
}
