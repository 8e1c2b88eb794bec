@testable import NsyncServer
import XCTest

/// What a restart does with what a crash (or a bad disk) left behind.
final class RaftStorageRecoveryTests: XCTestCase {
    private let segment = "log-00000000000000000001"
    private let record = StorageFixture.recordSize(100)
    private let header = StorageFixture.headerSize

    /// Writes `batches` batches of `perBatch` 100-byte entries, syncing after each.
    private func writeLog(_ dir: StorageScratchDirectory, batches: Int, perBatch: Int, commit: UInt64 = 0) throws {
        let (storage, _) = try dir.open()
        for b in 0..<batches {
            try storage.append(StorageFixture.entries(from: UInt64(b * perBatch + 1), count: perBatch))
            try storage.sync()
        }
        if commit > 0 {
            try storage.setHardState(HardState(term: 1, vote: nil, commit: commit))
            try storage.sync()
        }
        storage.close()
    }

    func testRecordCutShortMidWayIsCutOnRestartAndAppendsContinue() throws {
        let dir = try StorageScratchDirectory("torn-short")
        try writeLog(dir, batches: 2, perBatch: 5)
        try dir.truncate(segment, to: header + 9 * record + 40)  // the 10th record lost its end
        let (storage, recovered) = try dir.open()
        XCTAssertEqual(recovered.entries, StorageFixture.entries(from: 1, count: 9))
        XCTAssertEqual(recovered.notes.count, 1)
        let note = try XCTUnwrap(recovered.notes.first)
        XCTAssertTrue(note.contains("cut torn tail of \(segment) at offset \(header + 9 * record)"), note)
        XCTAssertTrue(note.contains("partial record"), note)
        XCTAssertEqual(try dir.size(segment), header + 9 * record)
        try storage.append(StorageFixture.entries(from: 10, count: 3, term: 2))
        try storage.sync()
        storage.close()
        let (_, again) = try dir.open()
        XCTAssertEqual(again.notes, [])
        XCTAssertEqual(again.entries, StorageFixture.entries(from: 1, count: 9) + StorageFixture.entries(from: 10, count: 3, term: 2))
    }

    func testBadChecksumInTheLastRecordIsCutOnRestart() throws {
        let dir = try StorageScratchDirectory("torn-crc")
        try writeLog(dir, batches: 2, perBatch: 5)
        try dir.flipByte(segment, at: header + 9 * record + 70)
        let (storage, recovered) = try dir.open()
        XCTAssertEqual(recovered.entries, StorageFixture.entries(from: 1, count: 9))
        let note = try XCTUnwrap(recovered.notes.first)
        XCTAssertTrue(note.contains("bad checksum"), note)
        XCTAssertTrue(note.contains("ends at index 9"), note)
        try storage.append(StorageFixture.entries(from: 10, count: 1, term: 2))
        try storage.sync()
        XCTAssertEqual(try storage.entries(in: 10...10).first?.term, 2)
    }

    func testZeroedTailFromAnExtendedButUnwrittenFileIsCut() throws {
        let dir = try StorageScratchDirectory("torn-zeros")
        try writeLog(dir, batches: 1, perBatch: 4)
        let end = try dir.size(segment)
        try dir.truncate(segment, to: end + 4096)  // size grew, data never landed
        let (_, recovered) = try dir.open()
        XCTAssertEqual(recovered.entries, StorageFixture.entries(from: 1, count: 4))
        XCTAssertEqual(try dir.size(segment), end)
        XCTAssertEqual(recovered.notes.count, 1)
    }

    /// Pages of one write can reach the disk out of order: a bad record with
    /// valid records after it is still torn if none of them was written after
    /// it had been synced.
    func testDamageInsideTheLastUnsyncedWriteIsCutEvenWithValidRecordsAfterIt() throws {
        let dir = try StorageScratchDirectory("torn-reordered")
        try writeLog(dir, batches: 2, perBatch: 5)  // the second batch: records 6...10
        try dir.flipByte(segment, at: header + 6 * record + 50)  // record 7; 8...10 intact
        let (_, recovered) = try dir.open()
        XCTAssertEqual(recovered.entries, StorageFixture.entries(from: 1, count: 6))
        XCTAssertEqual(recovered.notes.count, 1)
    }

    func testDamageBeforeRecordsWrittenAfterItWasSyncedRefusesToOpen() throws {
        let dir = try StorageScratchDirectory("corrupt-middle")
        try writeLog(dir, batches: 3, perBatch: 5)
        let offset = header + 2 * record + 60  // record 3, from the first batch
        try dir.flipByte(segment, at: offset)
        XCTAssertThrowsError(try dir.open()) { error in
            guard case let .corrupt(directory, file, at, reason) = error as? RaftStorageError else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(directory, dir.raft)
            XCTAssertEqual(file, segment)
            XCTAssertEqual(at, header + 2 * record)
            XCTAssertTrue(reason.contains("bad checksum at entry 3"), reason)
            let text = "\(error)"
            XCTAssertTrue(text.contains("\(dir.raft)/\(segment) is corrupt at offset \(header + 2 * record)"), text)
            XCTAssertTrue(text.contains("move \(dir.raft) aside"), text)
            XCTAssertTrue(text.contains("catches up from the cluster"), text)
        }
        // Refusing changed nothing: the evidence is still there.
        XCTAssertEqual(try dir.size(segment), header + 15 * record)
    }

    func testDamagedLengthFieldInTheMiddleRefusesToOpen() throws {
        let dir = try StorageScratchDirectory("corrupt-length")
        try writeLog(dir, batches: 3, perBatch: 5)
        try dir.flipByte(segment, at: header + 1 * record)  // record 2's length: now huge
        XCTAssertThrowsError(try dir.open()) { error in
            guard case .corrupt = error as? RaftStorageError else { return XCTFail("\(error)") }
        }
    }

    func testDamageAtOrBelowTheCommitIndexRefusesToOpen() throws {
        let dir = try StorageScratchDirectory("corrupt-committed")
        try writeLog(dir, batches: 1, perBatch: 10, commit: 10)
        try dir.flipByte(segment, at: header + 9 * record + 70)  // the last record, but committed
        XCTAssertThrowsError(try dir.open()) { error in
            guard case let .corrupt(_, _, _, reason) = error as? RaftStorageError else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("committed"), reason)
        }
    }

    func testDamageInAClosedSegmentRefusesToOpen() throws {
        let dir = try StorageScratchDirectory("corrupt-closed")
        let options = RaftStorage.Options(maxSegmentBytes: 1400)  // 10 records a segment
        do {
            let (storage, _) = try dir.open(options)
            try storage.append(StorageFixture.entries(from: 1, count: 15))
            try storage.sync()
            storage.close()
        }
        try dir.flipByte(segment, at: header + 9 * record + 70)  // the closed segment's last record
        XCTAssertThrowsError(try dir.open(options)) { error in
            guard case let .corrupt(_, file, _, reason) = error as? RaftStorageError else { return XCTFail("\(error)") }
            XCTAssertEqual(file, segment)
            XCTAssertTrue(reason.contains("complete and synced"), reason)
        }
    }

    func testTornHeaderOfANewLastSegmentRemovesIt() throws {
        let dir = try StorageScratchDirectory("torn-header")
        let options = RaftStorage.Options(maxSegmentBytes: 1400)
        do {
            let (storage, _) = try dir.open(options)
            try storage.append(StorageFixture.entries(from: 1, count: 12))
            try storage.sync()
            storage.close()
        }
        try dir.truncate("log-00000000000000000011", to: 10)
        let (storage, recovered) = try dir.open(options)
        XCTAssertEqual(recovered.entries, StorageFixture.entries(from: 1, count: 10))
        XCTAssertTrue(recovered.notes.first?.contains("removed torn segment log-00000000000000000011") ?? false,
                      "\(recovered.notes)")
        XCTAssertEqual(try dir.segmentNames(), [segment])
        try storage.append(StorageFixture.entries(from: 11, count: 1))
        try storage.sync()
        XCTAssertEqual(try dir.segmentNames().count, 2)
    }

    func testMissingSegmentRefusesToOpen() throws {
        let dir = try StorageScratchDirectory("gap")
        let options = RaftStorage.Options(maxSegmentBytes: 1400)
        do {
            let (storage, _) = try dir.open(options)
            try storage.append(StorageFixture.entries(from: 1, count: 25))
            try storage.sync()
            storage.close()
        }
        try FileDescriptor.unlink(dir.file("log-00000000000000000011"))
        XCTAssertThrowsError(try dir.open(options)) { error in
            guard case let .gap(_, reason) = error as? RaftStorageError else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("log-00000000000000000021 starts at index 21"), reason)
        }
        try FileDescriptor.unlink(dir.file(segment))
        XCTAssertThrowsError(try dir.open(options)) { error in
            guard case let .gap(_, reason) = error as? RaftStorageError else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("must start at 1"), reason)
        }
    }

    // MARK: hard state

    func testHardStateSurvivesACrashInTheMiddleOfAMetadataWrite() throws {
        let dir = try StorageScratchDirectory("metadata-torn")
        let older = HardState(term: 4, vote: "node-a", commit: 0)
        let newer = HardState(term: 5, vote: "node-c", commit: 0)
        var newestFile = ""
        do {
            let (storage, _) = try dir.open()
            try storage.setHardState(older)
            try storage.sync()
            try storage.setHardState(newer)
            try storage.sync()
            storage.close()
        }
        // Whichever file holds `newer` is the one a crash would have torn.
        for name in HardStateFiles.names {
            let fd = try FileDescriptor.open(dir.file(name), .readOnly)
            if case let .success((_, state)) = HardStateFiles.decode(try fd.closeAfter { try fd.readAll() }), state == newer {
                newestFile = name
            }
        }
        XCTAssertFalse(newestFile.isEmpty)
        try dir.truncate(newestFile, to: 30)
        let (storage, recovered) = try dir.open()
        XCTAssertEqual(recovered.hardState, older)
        XCTAssertTrue(recovered.notes.first?.contains("ignored torn \(newestFile)") ?? false, "\(recovered.notes)")
        // The next write goes to the torn file, leaving the good one alone.
        try storage.setHardState(HardState(term: 6, vote: nil, commit: 0))
        try storage.sync()
        storage.close()
        let (_, again) = try dir.open()
        XCTAssertEqual(again.hardState, HardState(term: 6, vote: nil, commit: 0))
        XCTAssertEqual(again.notes, [])
    }

    func testSeveralHardStatesBetweenSyncsNeverOverwriteTheDurableCopy() throws {
        let dir = try StorageScratchDirectory("metadata-pending")
        let durable = HardState(term: 2, vote: "x", commit: 0)
        do {
            let (storage, _) = try dir.open()
            try storage.setHardState(durable)
            try storage.sync()
            // Commit-only changes are written (without fsync) to the pending file, repeatedly.
            try storage.append(StorageFixture.entries(from: 1, count: 3, term: 2))
            for commit in 1...3 {
                try storage.setHardState(HardState(term: 2, vote: "x", commit: UInt64(commit)))
                try storage.sync()
            }
            storage.close()
        }
        var states: [HardState] = []
        for name in HardStateFiles.names {
            let fd = try FileDescriptor.open(dir.file(name), .readOnly)
            if case let .success((_, state)) = HardStateFiles.decode(try fd.closeAfter { try fd.readAll() }) {
                states.append(state)
            }
        }
        XCTAssertTrue(states.contains(durable), "the fsync'd copy is untouched: \(states)")
        XCTAssertTrue(states.contains(HardState(term: 2, vote: "x", commit: 3)), "\(states)")
    }

    func testBothMetadataFilesDamagedRefusesToOpen() throws {
        let dir = try StorageScratchDirectory("metadata-both")
        try writeLog(dir, batches: 1, perBatch: 2)
        for name in HardStateFiles.names { try dir.flipByte(name, at: 20) }
        XCTAssertThrowsError(try dir.open()) { error in
            guard case let .corrupt(_, _, _, reason) = error as? RaftStorageError else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("no readable copy of the term and vote"), reason)
        }
    }

    func testMissingMetadataNextToALogRefusesToOpen() throws {
        let dir = try StorageScratchDirectory("metadata-missing")
        try writeLog(dir, batches: 1, perBatch: 2)
        for name in HardStateFiles.names { try FileDescriptor.unlink(dir.file(name)) }
        XCTAssertThrowsError(try dir.open()) { error in
            guard case .gap = error as? RaftStorageError else { return XCTFail("\(error)") }
        }
    }
}
