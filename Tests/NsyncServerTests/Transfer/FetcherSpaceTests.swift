@testable import NsyncServer
import XCTest

/// The room a fetch asks for: its holder's allocation up front (a sparse
/// file keeps its holes), then, before each write of received or copied
/// bytes, those bytes beside the raft log's reserve. The checks against
/// the real free space of the test's disk; the writes into real files.
final class FetcherSpaceTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "fetcher-space-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func record(size: UInt64) -> FileRecord {
        FileRecord(path: "vm/disk.img", version: 7, kind: .file, size: size, origin: "node1")
    }

    /// The free space beside the reserve, which the test needs to be at least 16 MiB.
    private func spare() throws -> UInt64 {
        let space = try FileSystem.space(directory)
        let reserve = Fetcher.diskReserve(total: space.total)
        XCTAssertGreaterThan(space.available, reserve + (16 << 20), "the test needs 16 MiB free beside the reserve")
        return space.available - min(space.available, reserve)
    }

    func testASparseFileLongerThanTheFreeSpaceFitsWhenItsAllocationDoes() throws {
        let longer = record(size: try spare() * 4 + (1 << 30))
        XCTAssertNoThrow(try Fetcher.checkSpace(for: longer, needing: 1 << 20, in: directory))
        XCTAssertThrowsError(try Fetcher.checkSpace(for: longer, needing: longer.size, in: directory)) { error in
            XCTAssertEqual((error as? SystemError)?.isNoSpace, true, "\(error)")
            XCTAssertTrue("\(error)".contains("vm/disk.img needs"), "\(error)")
        }
        XCTAssertThrowsError(try Fetcher.checkSpace(for: longer, needing: longer.size / 2, in: directory)) { error in
            XCTAssertTrue("\(error)".contains("(sparse: "), "says the file is longer than what it needs: \(error)")
        }
    }

    func testBytesThatWouldEatIntoTheReserveAreRefused() throws {
        let spare = try spare()
        let file = record(size: 1 << 40)
        XCTAssertNoThrow(try Fetcher.checkSpace(for: file, adding: 0, in: directory))
        XCTAssertNoThrow(try Fetcher.checkSpace(for: file, adding: 4 << 20, in: directory))
        XCTAssertThrowsError(try Fetcher.checkSpace(for: file, adding: spare + (64 << 20), in: directory)) { error in
            XCTAssertEqual((error as? SystemError)?.isNoSpace, true, "\(error)")
            XCTAssertTrue("\(error)".contains("more of vm/disk.img would leave less than"), "\(error)")
        }
    }

    /// Each write of received bytes and of each MiB copied from the held
    /// file asks for its room first, holes left out; a refusal stops the
    /// writing there.
    func testEveryWriteAsksForTheRoomOfItsBytesFirst() throws {
        let heldBytes = TestBytes.pseudoRandom(count: (3 << 20) + 100, seed: 5)
        let heldPath = directory + "/held.bin"
        FileManager.default.createFile(atPath: heldPath, contents: Data(heldBytes))
        let status = try FileSystem.status(heldPath)
        let held = LocalFile(kind: .file, size: UInt64(heldBytes.count), mode: 0o644, mtime: status.modificationTime,
                             inode: status.inode)
        let received = TestBytes.pseudoRandom(count: 8_192, seed: 6)
        let pieces: [Fetcher.Piece] = [
            .bytes(0, received[..<4_096]), .zeros(4_096, 1 << 20), .bytes((1 << 20) + 4_096, received[4_096...]),
            .held((1 << 20) + 8_192, UInt64(heldBytes.count) - ((1 << 20) + 8_192)),
        ]
        var asked: [Int] = []
        let part = try ChunkWriter.create(directory + "/new.part", direct: false)
        try part.closeAfter {
            try Fetcher.write(pieces, to: part, heldAt: directory, "held.bin", held, room: { asked.append($0) }) { _ in }
        }
        XCTAssertEqual(asked, [4_096, 4_096, 1 << 20, (1 << 20) - 8_092],
                       "each received chunk (not the zeros between: a hole), then the held copy a MiB at a time")

        // Around the page cache the bytes are gathered into larger writes;
        // each asks for its own bytes, holes still left out (a lone zero
        // page between the zeros and the second chunk is written).
        asked = []
        let direct = try ChunkWriter.create(directory + "/direct.part", direct: true)
        try direct.closeAfter {
            try Fetcher.write(pieces, to: direct, heldAt: directory, "held.bin", held, room: { asked.append($0) }) { _ in }
        }
        print("direct writes asked for \(asked)")
        XCTAssertEqual(asked.reduce(0, +), 4_096 + 8_192 + (2 << 20) - 8_092)
        XCTAssertTrue(FileManager.default.contents(atPath: directory + "/direct.part")
                        == FileManager.default.contents(atPath: directory + "/new.part"))

        // Refused at the second MiB of the copy: nothing of it is written.
        asked = []
        let refused = try ChunkWriter.create(directory + "/refused.part", direct: false)
        XCTAssertThrowsError(try refused.closeAfter {
            try Fetcher.write(pieces, to: refused, heldAt: directory, "held.bin", held, room: {
                asked.append($0)
                if asked.count == 4 { throw SystemError(errno: ENOSPC, operation: "no room") }
            }) { _ in }
        })
        XCTAssertEqual(try FileSystem.status(directory + "/refused.part").size, Int64((2 << 20) + 8_192),
                       "written up to the refused MiB")
    }
}
