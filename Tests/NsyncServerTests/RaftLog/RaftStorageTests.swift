@testable import NsyncServer
import XCTest

/// Appending, syncing, overwriting and reading back the log, in real files.
final class RaftStorageTests: XCTestCase {
    func testNewDirectoryOpensEmpty() throws {
        let dir = try StorageScratchDirectory("empty")
        let (storage, recovered) = try dir.open()
        XCTAssertEqual(recovered.hardState, HardState())
        XCTAssertNil(recovered.snapshot)
        XCTAssertEqual(recovered.entries, [])
        XCTAssertEqual(recovered.notes, [])
        XCTAssertEqual(storage.firstIndex, 1)
        XCTAssertEqual(storage.lastIndex, 0)
        XCTAssertEqual(try dir.names(), ["lock", "metadata1", "metadata2"])
    }

    func testAppendedEntriesAndHardStateSurviveReopen() throws {
        let dir = try StorageScratchDirectory("roundtrip")
        let entries = StorageFixture.entries(from: 1, count: 250, term: 3)
        do {
            let (storage, _) = try dir.open()
            try storage.append(Array(entries[0..<100]))
            try storage.setHardState(HardState(term: 3, vote: "node-b", commit: 0))
            try storage.sync()
            try storage.append(Array(entries[100...]))
            try storage.setHardState(HardState(term: 3, vote: "node-b", commit: 120))  // commit-only change
            try storage.sync()
            XCTAssertEqual(storage.lastIndex, 250)
            XCTAssertEqual(try storage.entries(in: 99...102), Array(entries[98...101]))
            storage.close()
        }
        let (storage, recovered) = try dir.open()
        XCTAssertEqual(recovered.entries, entries)
        XCTAssertEqual(recovered.hardState, HardState(term: 3, vote: "node-b", commit: 120))
        XCTAssertEqual(recovered.notes, [])
        XCTAssertEqual(storage.firstIndex, 1)
        XCTAssertEqual(storage.lastIndex, 250)
        // Appends continue where the log ended.
        try storage.append(StorageFixture.entries(from: 251, count: 1, term: 4))
        try storage.sync()
        XCTAssertEqual(try storage.entries(in: 250...251).map(\.term), [3, 4])
    }

    func testVoteClearedAndEmptyEntriesRoundTrip() throws {
        let dir = try StorageScratchDirectory("vote")
        do {
            let (storage, _) = try dir.open()
            try storage.setHardState(HardState(term: 7, vote: "a-rather-long-node-name-for-the-vote", commit: 0))
            try storage.sync()
            try storage.append([RaftEntry(term: 7, index: 1, kind: .noop, data: [])])
            try storage.setHardState(HardState(term: 8, vote: nil, commit: 1))  // shorter record over a longer one
            try storage.sync()
            storage.close()
        }
        let (_, recovered) = try dir.open()
        XCTAssertEqual(recovered.hardState, HardState(term: 8, vote: nil, commit: 1))
        XCTAssertEqual(recovered.entries, [RaftEntry(term: 7, index: 1, kind: .noop, data: [])])
    }

    func testUnsyncedAppendsAreNotPromisedButSyncedOnesAre() throws {
        let dir = try StorageScratchDirectory("unsynced")
        do {
            let (storage, _) = try dir.open(RaftStorage.Options(writeBufferBytes: 1 << 20))
            try storage.append(StorageFixture.entries(from: 1, count: 10))
            try storage.sync()
            try storage.append(StorageFixture.entries(from: 11, count: 10))
            storage.close()  // staged bytes never written: what a crash loses
        }
        let (_, recovered) = try dir.open()
        XCTAssertEqual(recovered.entries, StorageFixture.entries(from: 1, count: 10))
    }

    func testAppendAtOrBelowLastIndexOverwritesTheSuffix() throws {
        let dir = try StorageScratchDirectory("overwrite")
        let options = RaftStorage.Options(maxSegmentBytes: 2000)  // ~14 records a segment
        do {
            let (storage, _) = try dir.open(options)
            try storage.append(StorageFixture.entries(from: 1, count: 60, term: 1))
            try storage.sync()
            XCTAssertGreaterThan(try dir.segmentNames().count, 3)
            // A new leader overwrites from 50 on, within the last segments.
            try storage.append(StorageFixture.entries(from: 50, count: 5, term: 2))
            try storage.sync()
            XCTAssertEqual(storage.lastIndex, 54)
            // Then another from 20 on, which removes whole segments.
            let before = try dir.segmentNames().count
            try storage.append(StorageFixture.entries(from: 20, count: 3, term: 3))
            try storage.sync()
            XCTAssertLessThan(try dir.segmentNames().count, before)
            XCTAssertEqual(storage.lastIndex, 22)
            XCTAssertEqual(try storage.entries(in: 18...22).map(\.term), [1, 1, 3, 3, 3])
            storage.close()
        }
        let (storage, recovered) = try dir.open(options)
        XCTAssertEqual(recovered.notes, [])
        XCTAssertEqual(recovered.entries,
                       StorageFixture.entries(from: 1, count: 19, term: 1) + StorageFixture.entries(from: 20, count: 3, term: 3))
        // Overwriting at a segment's first index leaves it empty, then refills it.
        let secondStart = UInt64(try dir.segmentNames()[1].dropFirst(4))!
        try storage.append(StorageFixture.entries(from: secondStart, count: 2, term: 4))
        try storage.sync()
        storage.close()
        let (_, again) = try dir.open(options)
        XCTAssertEqual(again.entries.last?.index, secondStart + 1)
        XCTAssertEqual(again.entries.suffix(2).map(\.term), [4, 4])
    }

    func testSegmentsRollOverAtTheSizeLimitAndAreNamedByFirstIndex() throws {
        let dir = try StorageScratchDirectory("rollover")
        // Header 24 + 10 records of 133 bytes = 1354: the 11th does not fit in 1400.
        let options = RaftStorage.Options(maxSegmentBytes: 1400, writeBufferBytes: 500)
        let entries = StorageFixture.entries(from: 1, count: 35)
        do {
            let (storage, _) = try dir.open(options)
            for batch in stride(from: 0, to: 35, by: 7) {
                try storage.append(Array(entries[batch..<batch + 7]))
                try storage.sync()
            }
            storage.close()
        }
        XCTAssertEqual(try dir.segmentNames(), [
            "log-00000000000000000001", "log-00000000000000000011",
            "log-00000000000000000021", "log-00000000000000000031",
        ])
        XCTAssertEqual(try dir.size("log-00000000000000000001"), 24 + 10 * 133)
        XCTAssertEqual(try dir.size("log-00000000000000000031"), 24 + 5 * 133)
        let (storage, recovered) = try dir.open(options)
        XCTAssertEqual(recovered.entries, entries)
        XCTAssertEqual(try storage.entries(in: 9...12), Array(entries[8...11]))
    }

    func testARecordLargerThanASegmentGetsASegmentOfItsOwn() throws {
        let dir = try StorageScratchDirectory("large")
        let options = RaftStorage.Options(maxSegmentBytes: 1000, writeBufferBytes: 100)
        let entries = StorageFixture.entries(from: 1, count: 2, size: 10)
            + StorageFixture.entries(from: 3, count: 1, size: 5000)
            + StorageFixture.entries(from: 4, count: 1, size: 10)
        do {
            let (storage, _) = try dir.open(options)
            try storage.append(entries)
            try storage.sync()
            storage.close()
        }
        XCTAssertEqual(try dir.segmentNames().count, 3)
        let (_, recovered) = try dir.open(options)
        XCTAssertEqual(recovered.entries, entries)
    }

    func testAppendsThatBreakTheContractAreRejectedWithoutHarm() throws {
        let dir = try StorageScratchDirectory("contract")
        let (storage, _) = try dir.open()
        try storage.append(StorageFixture.entries(from: 1, count: 5))
        XCTAssertThrowsError(try storage.append(StorageFixture.entries(from: 7, count: 1))) { error in
            guard case .invalidAppend = error as? RaftStorageError else { return XCTFail("\(error)") }
        }
        var gapped = StorageFixture.entries(from: 6, count: 3)
        gapped[2].index = 10
        XCTAssertThrowsError(try storage.append(gapped))
        XCTAssertThrowsError(try storage.append(StorageFixture.entries(from: 0, count: 1)))
        // The storage stays usable: a caller bug changed nothing on disk.
        try storage.append(StorageFixture.entries(from: 6, count: 1))
        try storage.sync()
        XCTAssertEqual(storage.lastIndex, 6)
        XCTAssertThrowsError(try storage.entries(in: 5...7)) { error in
            XCTAssertEqual(error as? RaftStorageError, .unavailable(7))
        }
    }

    func testSecondOpenOfTheSameDirectoryIsRefusedUntilTheFirstCloses() throws {
        let dir = try StorageScratchDirectory("lock")
        let (first, _) = try dir.open()
        XCTAssertThrowsError(try dir.open()) { error in
            guard case let .held(_, holder) = error as? LockFile.Failure else { return XCTFail("\(error)") }
            XCTAssertEqual(holder, getpid())
            XCTAssertTrue("\(error)".contains("another nsyncd already runs"), "\(error)")
        }
        first.close()
        XCTAssertThrowsError(try first.sync()) { error in
            XCTAssertEqual(error as? RaftStorageError, .closed(directory: dir.raft))
        }
        XCTAssertNoThrow(try dir.open())
    }

    /// Random appends, overwrites, syncs, snapshots and reopens checked
    /// against a plain array: whatever was synced must come back exactly.
    func testRandomOperationsMatchASimpleModelAcrossReopens() throws {
        let seed = StorageTestRandom.seed(#function)
        var random = StorageTestRandom(seed: seed)
        let dir = try StorageScratchDirectory("model")
        let options = RaftStorage.Options(maxSegmentBytes: 6000, writeBufferBytes: 700)
        var (storage, _) = try dir.open(options)
        var model: [RaftEntry] = []  // entries after the snapshot
        var snapshotIndex: UInt64 = 0
        var term: UInt64 = 1
        var seen = Set<String>()
        for step in 0..<400 {
            let context = "seed \(seed) step \(step)"
            switch Int.random(in: 0..<100, using: &random) {
            case 0..<60:
                let last = snapshotIndex + UInt64(model.count)
                // Mostly extend, sometimes overwrite a suffix (never below the snapshot).
                let back = Int.random(in: 0..<4, using: &random) == 0 ? UInt64.random(in: 0...min(5, UInt64(model.count)), using: &random) : 0
                if back > 0 { term += 1; seen.insert("overwrite") }
                let start = last + 1 - back
                let batch = (0..<UInt64.random(in: 1...12, using: &random)).map { k in
                    RaftEntry(term: term, index: start + k, data: (0..<Int.random(in: 0...300, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) })
                }
                try storage.append(batch)
                model.removeLast(Int(back))
                model += batch
            case 60..<85:
                try storage.sync()
            case 85..<92:
                guard !model.isEmpty else { continue }
                let keep = Int.random(in: 0..<model.count, using: &random)
                try storage.sync()
                let at = model[keep]
                try storage.saveSnapshot(RaftSnapshot(metadata: SnapshotMetadata(index: at.index, term: at.term, members: ["a"]), data: [UInt8(keep & 0xFF)]))
                snapshotIndex = at.index
                model.removeFirst(keep + 1)
                seen.insert("snapshot")
            default:
                try storage.sync()
                storage.close()
                let (reopened, recovered) = try dir.open(options)
                storage = reopened  // releasing the closed one must not touch the new one's files
                seen.insert("reopen")
                XCTAssertEqual(recovered.entries, model, context)
                XCTAssertEqual(recovered.notes, [], context)
                XCTAssertEqual(recovered.snapshot?.metadata.index ?? 0, snapshotIndex, context)
            }
            XCTAssertEqual(storage.lastIndex, snapshotIndex + UInt64(model.count), context)
            XCTAssertEqual(storage.firstIndex, snapshotIndex + 1, context)
        }
        try storage.sync()
        if !model.isEmpty {
            XCTAssertEqual(try storage.entries(in: storage.firstIndex...storage.lastIndex), model, "seed \(seed)")
        }
        XCTAssertEqual(seen, ["overwrite", "snapshot", "reopen"], "seed \(seed): every kind of step ran")
    }

    /// Crashes after unsynced writes, simulated by cutting or damaging bytes
    /// written after the last sync: recovery must always open, and return
    /// every synced entry plus some prefix of the unsynced ones.
    func testRandomTornWritesAfterTheLastSyncNeverLoseSyncedEntries() throws {
        let seed = StorageTestRandom.seed(#function)
        var random = StorageTestRandom(seed: seed)
        let dir = try StorageScratchDirectory("torn-random")
        let options = RaftStorage.Options(maxSegmentBytes: 4000, writeBufferBytes: 1)  // every append reaches the file
        var (storage, _) = try dir.open(options)
        var model: [RaftEntry] = []
        var cuts = 0
        for round in 0..<60 {
            let context = "seed \(seed) round \(round)"
            for _ in 0..<Int.random(in: 0...3, using: &random) {
                let start = UInt64(model.count + 1)
                let batch = (0..<UInt64.random(in: 1...6, using: &random)).map {
                    RaftEntry(term: 1, index: start + $0, data: (0..<Int.random(in: 0...200, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) })
                }
                try storage.append(batch)
                model += batch
                if Bool.random(using: &random) { try storage.sync() }
            }
            // Everything at or below syncedIndex is durable; only later bytes may be hit.
            let durable = storage.syncedIndex
            guard let last = storage.segments.last else { continue }
            let damageFrom: Int64 = durable + 1 < last.firstIndex ? 0
                : durable >= last.lastIndex ? last.size
                : Int64(last.offsets[Int(durable + 1 - last.firstIndex)])
            storage.close()
            let size = try dir.size(last.fileName)
            XCTAssertEqual(size, last.size, context)
            if damageFrom < size {
                let at = Int64.random(in: damageFrom..<size, using: &random)
                if Bool.random(using: &random) {
                    try dir.truncate(last.fileName, to: at)
                } else {
                    try dir.flipByte(last.fileName, at: at)
                }
            }
            let (reopened, recovered) = try dir.open(options)
            storage = reopened
            XCTAssertGreaterThanOrEqual(UInt64(recovered.entries.count), durable, context)
            XCTAssertEqual(recovered.entries, Array(model.prefix(recovered.entries.count)), context)
            if recovered.entries.count < model.count { cuts += 1 }
            model = recovered.entries
        }
        XCTAssertGreaterThan(cuts, 10, "seed \(seed): torn tails were exercised")
    }
}
