import XCTest
@testable import NsyncServer

final class FileIndexSnapshotTests: XCTestCase {
    func testEmptyIndexRoundTrips() throws {
        let restored = try FileIndex(snapshotData: FileIndex().snapshotData())
        XCTAssertEqual(restored, FileIndex())
        XCTAssertEqual(restored.count, 0)
    }

    func testRoundTripKeepsEveryRecordTheAppliedIndexAndTheBytes() throws {
        let index = IndexScenario.index(seed: 42, commands: 300)
        XCTAssertGreaterThan(index.count, 20)
        XCTAssertTrue(Set(index.map(\.kind)) == [.file, .directory, .symlink, .deleted], "workload covers every kind")
        let data = index.snapshotData()
        let restored = try FileIndex(snapshotData: data)
        XCTAssertEqual(restored, index)
        XCTAssertEqual(restored.appliedIndex, 300)
        XCTAssertEqual(Array(restored), Array(index))
        XCTAssertEqual(restored.snapshotData(), data, "the same state always gives the same bytes")
    }

    /// The node freezes its index for a snapshot and encodes the copy on the
    /// thread pool while the loop goes on applying: the copy must stay what
    /// it was (a value, no state shared with the original).
    func testACopyEncodedOnAnotherThreadWhileTheOriginalAppliesIsTheStateItWasTakenAt() throws {
        var index = IndexScenario.index(seed: 7, commands: 200)
        let frozen = index
        let expected = frozen.snapshotData()
        /// Written by the thread, read after its signal.
        final class Result: @unchecked Sendable { var bytes: [UInt8] = [] }
        let encoded = Result()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            for _ in 0..<20 { encoded.bytes = frozen.snapshotData() }
            done.signal()
        }
        let hash = [UInt8](repeating: 3, count: 32)
        for n in 0..<200 {
            let changes: [IndexChange] = (0..<50).map {
                .put(.file("later/\(n)/\($0)", size: 1, mode: 0o644, mtime: 1, hash: hash, base: 0))
            }
            _ = index.apply(IndexCommand(origin: "n3", changes: changes), at: 1_000 + UInt64(n))
        }
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(encoded.bytes, expected)
        let restored = try FileIndex(snapshotData: encoded.bytes)
        XCTAssertEqual(restored, frozen)
        XCTAssertNotEqual(restored, index)
        XCTAssertGreaterThanOrEqual(index.count, frozen.count + 200 * 50, "the original went on")
    }

    func testHundredThousandRecordsRoundTripQuickly() throws {
        var index = FileIndex()
        let hash = [UInt8](repeating: 7, count: 32)
        let changes: [IndexChange] = (0..<100_000).map {
            .put(.file("photos/\($0 % 100)/IMG_\($0).jpg", size: UInt64($0), mode: 0o644, mtime: Int64($0), hash: hash, base: 0))
        }
        _ = index.apply(IndexCommand(origin: "node-1", changes: changes), at: 7)
        _ = index.apply(IndexCommand(origin: "node-2", changes: (0..<100_000).map { .hold(path: "photos/\($0 % 100)/IMG_\($0).jpg", version: 7) }), at: 8)
        var started = Date()
        let data = index.snapshotData()
        let encodeSeconds = Date().timeIntervalSince(started)
        started = Date()
        let restored = try FileIndex(snapshotData: data)
        let decodeSeconds = Date().timeIntervalSince(started)
        print("FileIndex snapshot: 100000 records, \(data.count) bytes, encode \(String(format: "%.2f", encodeSeconds)) s, decode \(String(format: "%.2f", decodeSeconds)) s")
        XCTAssertEqual(restored, index)
        XCTAssertLessThan(data.count, 100_000 * 100)
        XCTAssertLessThan(encodeSeconds + decodeSeconds, 15)
    }

    func testCorruptSnapshotsAreRefused() throws {
        var index = FileIndex()
        _ = index.apply(IndexCommand(origin: "n1", changes: [
            .put(.file("a", size: 1, mode: 0o644, mtime: 0, hash: [UInt8](repeating: 1, count: 32), base: 0)),
            .put(.directory("b", mode: 0o755, mtime: 0, base: 0)),
        ]), at: 3)
        let data = index.snapshotData()
        for length in 0..<data.count {
            XCTAssertThrowsError(try FileIndex(snapshotData: Array(data[..<length])), "length \(length)")
        }
        XCTAssertThrowsError(try FileIndex(snapshotData: data + [0])) { XCTAssertTrue("\($0)".contains("trailing")) }
        var bytes = data
        bytes[0] = UInt8(ascii: "X")
        XCTAssertThrowsError(try FileIndex(snapshotData: bytes)) { XCTAssertTrue("\($0)".contains("bad magic")) }
        bytes = data
        bytes[5] = 2
        XCTAssertThrowsError(try FileIndex(snapshotData: bytes)) { XCTAssertTrue("\($0)".contains("format 2")) }
        // Layout: magic 4, format 2, applied 8, name count 2, "n1" 3, record count 4.
        let firstRecord = 4 + 2 + 8 + 2 + 3 + 4
        bytes = data
        bytes[firstRecord + 2] = UInt8(ascii: "c")  // "a" becomes "c", now after "b"
        XCTAssertThrowsError(try FileIndex(snapshotData: bytes)) { XCTAssertTrue("\($0)".contains("out of order"), "\($0)") }
        let originOffset = firstRecord + 3 + 8 + 1 + 8 + 4 + 8 + 1 + 32 + 2
        bytes = data
        bytes[originOffset + 1] = 1  // name number 1 of a 1-name table
        XCTAssertThrowsError(try FileIndex(snapshotData: bytes)) { XCTAssertTrue("\($0)".contains("out of range"), "\($0)") }
    }

    func testFuzzedSnapshotBytesNeverCrash() {
        let seed = WireTestRandom.fuzzSeed("FileIndex snapshot fuzz")
        var random = WireTestRandom(seed: seed)
        let data = IndexScenario.index(seed: seed, commands: 20, pathCount: 12).snapshotData()
        var loaded = 0
        for caseNumber in 0..<3_000 {
            var bytes = data
            for _ in 0..<(1 + random.below(3)) where !bytes.isEmpty {
                switch random.below(3) {
                case 0: bytes[random.below(bytes.count)] ^= UInt8(1 << random.below(8))
                case 1: bytes[random.below(bytes.count)] = UInt8(random.below(256))
                default: bytes.removeLast(random.below(bytes.count))
                }
            }
            if let index = try? FileIndex(snapshotData: bytes) {
                loaded += 1
                XCTAssertEqual(Array(index).count, index.count, "case \(caseNumber), seed \(seed)")
            }
        }
        print("FileIndex snapshot fuzz: 3000 cases, \(loaded) still loadable")
    }
}
