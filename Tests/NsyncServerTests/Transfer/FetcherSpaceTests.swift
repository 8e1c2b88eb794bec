@testable import NsyncServer
import XCTest

/// The room a fetch asks for: its holder's allocation up front (a sparse
/// file keeps its holes), then each write job's bytes beside the raft
/// log's reserve. Against the real free space of the test's disk.
final class FetcherSpaceTests: XCTestCase {
    private let directory = NSTemporaryDirectory()

    private func record(size: UInt64) -> FileRecord {
        FileRecord(path: "vm/disk.img", version: 7, kind: .file, size: size, origin: "node1")
    }

    func testAWriteJobCountsReceivedAndCopiedBytesNotZeros() {
        let chunks: [Fetcher.Piece] = [.bytes(0, [UInt8](repeating: 1, count: 4_096)[...]), .zeros(4_096, 1 << 30),
                                       .held(4_096 + (1 << 30), 65_536)]
        XCTAssertEqual(Fetcher.bytesWritten(by: chunks), 4_096 + 65_536)
        XCTAssertEqual(Fetcher.bytesWritten(by: [.zeros(0, 1 << 40)]), 0)
    }

    func testASparseFileLongerThanTheFreeSpaceFitsWhenItsAllocationDoes() throws {
        let space = try FileSystem.space(directory)
        let reserve = Fetcher.diskReserve(total: space.total)
        XCTAssertGreaterThan(space.available, reserve + (16 << 20), "the test needs 16 MiB free beside the reserve")
        let longer = record(size: space.available * 2)
        XCTAssertNoThrow(try Fetcher.checkSpace(for: longer, needing: 1 << 20, in: directory))
        XCTAssertThrowsError(try Fetcher.checkSpace(for: longer, in: directory)) { error in
            XCTAssertEqual((error as? SystemError)?.isNoSpace, true, "\(error)")
            XCTAssertTrue("\(error)".contains("vm/disk.img needs"), "\(error)")
        }
        XCTAssertThrowsError(try Fetcher.checkSpace(for: longer, needing: space.available, in: directory)) { error in
            XCTAssertTrue("\(error)".contains("(sparse: "), "says the file is longer than what it needs: \(error)")
        }
    }

    func testAWriteJobMayNotEatIntoTheReserve() throws {
        let space = try FileSystem.space(directory)
        let file = record(size: 1 << 40)
        XCTAssertNoThrow(try Fetcher.checkSpace(for: file, writing: 0, in: directory))
        XCTAssertNoThrow(try Fetcher.checkSpace(for: file, writing: 4 << 20, in: directory))
        XCTAssertThrowsError(try Fetcher.checkSpace(for: file, writing: space.available + 1, in: directory)) { error in
            XCTAssertEqual((error as? SystemError)?.isNoSpace, true, "\(error)")
            XCTAssertTrue("\(error)".contains("more of vm/disk.img would leave less than"), "\(error)")
        }
    }
}
