import XCTest
@testable import NsyncServer

final class FrameTests: XCTestCase {
    func testHeaderIsBigEndianLengthOfTypePlusPayloadThenType() {
        XCTAssertEqual(Frame.header(type: 7, payloadLength: 0), [0, 0, 0, 1, 7])
        XCTAssertEqual(Frame.header(type: 0xAB, payloadLength: 0x0102_0304), [0x01, 0x02, 0x03, 0x05, 0xAB])
    }

    func testEncodeWritesPayloadOnceAndPatchesTheLength() throws {
        let buffer = try Frame.encode(type: 3) { payload in
            payload.writeInteger(UInt32(0xDEAD_BEEF))
            payload.writeBytes([1, 2, 3])
        }
        XCTAssertEqual(buffer.bytes, [0, 0, 0, 8, 3, 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3])
    }

    func testSeveralFramesShareOneBufferAndDecodeInOrder() throws {
        var buffer = ByteBuffer()
        try Frame.encode(type: 1, into: &buffer) { $0.writeBytes([9]) }
        try Frame.encode(type: 2, into: &buffer) { _ in }
        try Frame.encode(type: 3, into: &buffer) { $0.writeBytes(Array(repeating: 5, count: 300)) }
        var decoder = FrameDecoder()
        decoder.append(contentsOf: buffer.bytes)
        XCTAssertEqual(try decoder.next(), Frame(type: 1, payload: [9]))
        XCTAssertEqual(try decoder.next(), Frame(type: 2, payload: []))
        XCTAssertEqual(try decoder.next(), Frame(type: 3, payload: Array(repeating: 5, count: 300)))
        XCTAssertNil(try decoder.next())
    }

    func testHeaderSentBeforeCallersOwnPayloadDecodesLikeAnEncodedFrame() throws {
        let chunk = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var decoder = FrameDecoder()
        decoder.append(contentsOf: Frame.header(type: 9, payloadLength: chunk.count))
        XCTAssertNil(try decoder.next())
        chunk.withUnsafeBytes { decoder.append($0) }
        let frame = try XCTUnwrap(try decoder.next())
        XCTAssertEqual(frame, Frame(type: 9, payload: chunk))
        XCTAssertEqual(frame.encoded(), Frame.header(type: 9, payloadLength: chunk.count) + chunk)
    }

    func testEncodingAFrameOverTheLimitThrowsAndLeavesTheBufferAsItWas() throws {
        var buffer = ByteBuffer()
        try Frame.encode(type: 1, into: &buffer) { $0.writeBytes([1, 2]) }
        let before = buffer
        XCTAssertThrowsError(try Frame.encode(type: 2, into: &buffer, maxSize: 10) { $0.writeBytes(Array(repeating: 0, count: 10)) }) {
            XCTAssertEqual($0 as? WireError, .tooLarge(11, limit: 10))
        }
        XCTAssertEqual(buffer, before)
        // Exactly at the limit is fine: the type byte plus 9 payload bytes.
        try Frame.encode(type: 2, into: &buffer, maxSize: 10) { $0.writeBytes(Array(repeating: 0, count: 9)) }
        XCTAssertEqual(buffer.bytes.count, before.bytes.count + 14)
    }

    func testPayloadWriterThatThrowsLeavesTheBufferAsItWas() {
        struct Refused: Error {}
        var buffer = ByteBuffer(bytes: [42])
        XCTAssertThrowsError(try Frame.encode(type: 1, into: &buffer) { payload in
            payload.writeBytes([1, 2, 3])
            throw Refused()
        })
        XCTAssertEqual(buffer.bytes, [42])
    }

    func testFramesCompareByReadablePayloadOnly() throws {
        var withPrefix = ByteBuffer(bytes: [0xFF, 0xFF, 1, 2])
        try withPrefix.moveReaderIndex(forwardBy: 2)
        XCTAssertEqual(Frame(type: 1, payload: withPrefix), Frame(type: 1, payload: [1, 2]))
        XCTAssertNotEqual(Frame(type: 2, payload: withPrefix), Frame(type: 1, payload: [1, 2]))
    }
}
