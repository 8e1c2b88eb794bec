@testable import NsyncServer
import XCTest

/// Snapshots: atomic replacement, log compaction behind them, and restarts.
final class RaftStorageSnapshotTests: XCTestCase {
    /// 10 records of 100 bytes a segment.
    private let options = RaftStorage.Options(maxSegmentBytes: 1400)

    private func snapshot(_ index: UInt64, term: UInt64 = 1, data: [UInt8] = Array("state".utf8)) -> RaftSnapshot {
        RaftSnapshot(metadata: SnapshotMetadata(index: index, term: term, members: ["node-a", "node-b", "node-c"]), data: data)
    }

    func testSnapshotDropsCoveredSegmentsKeepsLaterEntriesAndSurvivesRestart() throws {
        let dir = try StorageScratchDirectory("compact")
        let entries = StorageFixture.entries(from: 1, count: 45)
        let state = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        do {
            let (storage, _) = try dir.open(options)
            try storage.append(entries)
            try storage.sync()
            XCTAssertEqual(try dir.segmentNames().count, 5)
            try storage.saveSnapshot(snapshot(25, data: state))
            // Segments 1-10 and 11-20 are wholly covered; 21-30 holds 26...30 still.
            XCTAssertEqual(try dir.segmentNames(), [
                "log-00000000000000000021", "log-00000000000000000031", "log-00000000000000000041",
            ])
            XCTAssertEqual(storage.firstIndex, 26)
            XCTAssertEqual(storage.lastIndex, 45)
            XCTAssertEqual(try storage.entries(in: 26...27), Array(entries[25...26]))
            XCTAssertThrowsError(try storage.entries(in: 25...26))
            XCTAssertEqual(try storage.loadSnapshot(), snapshot(25, data: state))
            XCTAssertFalse(try dir.names().contains(SnapshotFile.temporaryName))
            storage.close()
        }
        let (storage, recovered) = try dir.open(options)
        XCTAssertEqual(recovered.notes, [])
        XCTAssertEqual(recovered.snapshot, snapshot(25, data: state))
        XCTAssertEqual(recovered.entries, Array(entries[25...]))
        XCTAssertEqual(storage.firstIndex, 26)
        // Appending below the snapshot is a driver bug, rejected.
        XCTAssertThrowsError(try storage.append(StorageFixture.entries(from: 25, count: 1))) { error in
            guard case .invalidAppend = error as? RaftStorageError else { return XCTFail("\(error)") }
        }
        try storage.append(StorageFixture.entries(from: 46, count: 1))
        try storage.sync()
    }

    func testSnapshotBeyondTheLogDiscardsItAndTheLogRestartsAfterIt() throws {
        let dir = try StorageScratchDirectory("beyond")
        do {
            let (storage, _) = try dir.open(options)
            try storage.append(StorageFixture.entries(from: 1, count: 15))
            try storage.sync()
            try storage.saveSnapshot(snapshot(100, term: 3))
            XCTAssertEqual(try dir.segmentNames(), [])
            XCTAssertEqual(storage.firstIndex, 101)
            XCTAssertEqual(storage.lastIndex, 100)
            try storage.append(StorageFixture.entries(from: 101, count: 3, term: 3))
            try storage.sync()
            XCTAssertEqual(try dir.segmentNames(), ["log-00000000000000000101"])
            storage.close()
        }
        let (_, recovered) = try dir.open(options)
        XCTAssertEqual(recovered.snapshot?.metadata.index, 100)
        XCTAssertEqual(recovered.entries, StorageFixture.entries(from: 101, count: 3, term: 3))
        XCTAssertEqual(recovered.notes, [])
    }

    func testSnapshotWhoseTermDisagreesWithTheLogDiscardsTheLog() throws {
        let dir = try StorageScratchDirectory("conflict")
        let (storage, _) = try dir.open(options)
        try storage.append(StorageFixture.entries(from: 1, count: 15, term: 1))
        try storage.sync()
        try storage.saveSnapshot(snapshot(12, term: 2))  // a leader's log had term 2 at 12
        XCTAssertEqual(try dir.segmentNames(), [])
        XCTAssertEqual(storage.lastIndex, 12)
        XCTAssertThrowsError(try storage.saveSnapshot(snapshot(11, term: 2)))  // older than the current one
    }

    func testInterruptedSnapshotSaveIsFinishedOnRestart() throws {
        let dir = try StorageScratchDirectory("interrupted")
        do {
            let (storage, _) = try dir.open(options)
            try storage.append(StorageFixture.entries(from: 1, count: 35))
            try storage.sync()
            storage.close()
        }
        // As if the snapshot at 25 was renamed into place, then the node died
        // before deleting segments, while already writing the next snapshot.
        try SnapshotFile.write(snapshot(25), directory: dir.raft)
        let leftover = try FileDescriptor.open(dir.file(SnapshotFile.temporaryName), .writeOnly, options: .create)
        try leftover.closeAfter { try leftover.write(all: [1, 2, 3], at: 0) }
        let (storage, recovered) = try dir.open(options)
        XCTAssertEqual(recovered.entries, StorageFixture.entries(from: 26, count: 10))
        XCTAssertEqual(recovered.hardState.commit, 25, "a snapshot covers only committed entries")
        XCTAssertEqual(recovered.notes.count, 2, "\(recovered.notes)")
        XCTAssertTrue(recovered.notes.contains { $0.contains("removed 2 segment(s) covered by the snapshot") }, "\(recovered.notes)")
        XCTAssertEqual(try dir.segmentNames(), ["log-00000000000000000021", "log-00000000000000000031"])
        XCTAssertFalse(try dir.names().contains(SnapshotFile.temporaryName))
        XCTAssertEqual(storage.firstIndex, 26)
    }

    func testInterruptedInstallOfAConflictingSnapshotDiscardsTheLogOnRestart() throws {
        let dir = try StorageScratchDirectory("interrupted-conflict")
        do {
            let (storage, _) = try dir.open(options)
            try storage.append(StorageFixture.entries(from: 1, count: 15, term: 1))
            try storage.sync()
            storage.close()
        }
        try SnapshotFile.write(snapshot(12, term: 2), directory: dir.raft)
        let (_, recovered) = try dir.open(options)
        XCTAssertEqual(recovered.entries, [])
        XCTAssertTrue(recovered.notes.first?.contains("discarded the log") ?? false, "\(recovered.notes)")
        XCTAssertEqual(try dir.segmentNames(), [])
    }

    func testDiscardStoppedHalfwayIsFinishedOnRestart() throws {
        let dir = try StorageScratchDirectory("interrupted-discard")
        do {
            let (storage, _) = try dir.open(options)
            try storage.append(StorageFixture.entries(from: 1, count: 25, term: 1))
            try storage.sync()
            storage.close()
        }
        // A leader's snapshot at 5 with term 2: the discard removes the newest
        // segments first and the node died after two of the three.
        try SnapshotFile.write(snapshot(5, term: 2), directory: dir.raft)
        try FileDescriptor.unlink(dir.file("log-00000000000000000021"))
        try FileDescriptor.unlink(dir.file("log-00000000000000000011"))
        let (storage, recovered) = try dir.open(options)
        XCTAssertEqual(recovered.entries, [])
        XCTAssertTrue(recovered.notes.first?.contains("term 1 at index 5") ?? false, "\(recovered.notes)")
        XCTAssertEqual(try dir.segmentNames(), [])
        XCTAssertEqual(storage.lastIndex, 5)
    }

    func testCorruptSnapshotRefusesToOpen() throws {
        let dir = try StorageScratchDirectory("snapshot-corrupt")
        do {
            let (storage, _) = try dir.open(options)
            try storage.append(StorageFixture.entries(from: 1, count: 5))
            try storage.sync()
            try storage.saveSnapshot(snapshot(3, data: [UInt8](repeating: 7, count: 1000)))
            storage.close()
        }
        try dir.flipByte(SnapshotFile.name, at: 500)
        XCTAssertThrowsError(try dir.open(options)) { error in
            guard case let .corrupt(_, file, _, _) = error as? RaftStorageError else { return XCTFail("\(error)") }
            XCTAssertEqual(file, SnapshotFile.name)
        }
    }
}
