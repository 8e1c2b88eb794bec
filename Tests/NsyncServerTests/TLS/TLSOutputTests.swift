import XCTest
@testable import NsyncServer

final class TLSOutputTests: XCTestCase {
    private func append(_ output: TLSOutput, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { output.append($0.baseAddress!, count: $0.count) }
    }

    func testBytesSpanningBlocksComeOutWholeAndInOrder() {
        let output = TLSOutput()
        let bytes = TLSTestRandom(seed: 3).bytesOf(TLSOutput.blockSize * 2 + 20_000)
        // Record-sized appends, as OpenSSL makes them.
        for start in stride(from: 0, to: bytes.count, by: 16_406) {
            append(output, Array(bytes[start..<min(start + 16_406, bytes.count)]))
        }
        XCTAssertEqual(output.pendingCount, bytes.count)
        var taken: [IOBuffer] = []
        output.take { taken.append($0) }
        XCTAssertEqual(taken.count, 3)
        XCTAssertEqual(taken.flatMap(\.bytes), bytes)
        XCTAssertEqual(output.pendingCount, 0)
        var again = 0
        output.take { _ in again += 1 }
        XCTAssertEqual(again, 0, "taken bytes are not handed out twice")
    }

    func testSmallFlushIsCopiedSoTheBlockIsReusedAtOnce() {
        let output = TLSOutput()
        append(output, [1, 2, 3])
        var first: IOBuffer?
        output.take { first = $0 }
        XCTAssertEqual(first?.bytes, [1, 2, 3])
        XCTAssertEqual(first?.capacity, 3, "a heartbeat must not pin a whole block")
        append(output, [4, 5])
        var second: IOBuffer?
        output.take { second = $0 }
        XCTAssertEqual(second?.bytes, [4, 5])
        XCTAssertEqual(first?.bytes, [1, 2, 3], "an earlier flush is not overwritten while its write is pending")
    }

    func testRecycledBlocksAreReusedInsteadOfAllocated() {
        let output = TLSOutput()
        let big = [UInt8](repeating: 7, count: TLSOutput.blockSize)
        append(output, big)
        var blocks: [IOBuffer] = []
        output.take { blocks.append($0) }
        XCTAssertEqual(blocks.count, 1)
        let block = blocks[0]
        output.recycle(block)
        append(output, big)  // fills the current block, then needs a fresh one
        append(output, big)
        var next: [IOBuffer] = []
        output.take { next.append($0) }
        XCTAssertTrue(next.contains { $0 === block }, "the recycled block came back")
    }
}
