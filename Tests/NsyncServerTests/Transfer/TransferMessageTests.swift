@testable import NsyncServer
import XCTest

final class TransferMessageTests: XCTestCase {
    private func roundTrip(_ message: TransferMessage) throws -> TransferMessage {
        var buffer = ByteBuffer()
        message.encodePayload(into: &buffer)
        return try TransferMessage.decode(type: message.frameType.rawValue, payload: &buffer)
    }

    func testEveryMessageRoundTrips() throws {
        let messages: [TransferMessage] = [
            .request(FetchRequest(requestID: 7, path: "a/b.bin", version: 42, offset: 1 << 20, length: 4_096)),
            .request(FetchRequest(requestID: 8, path: "a/b.bin", version: 42, noRedirect: true)),
            .request(FetchRequest(requestID: 9, path: "log.txt", version: 43, offset: 5 << 20,
                                  prefixDigest: SHA256.hash(Array("the first 5 MiB".utf8)))),
            .header(FetchHeader(requestID: 9, status: .prefixDiffers, message: "bytes 0..<5242880 differ")),
            .header(FetchHeader(requestID: 7, status: .versionNotHeld, size: 9, message: "gone")),
            .header(FetchHeader(requestID: 8, status: .redirect, message: "node-3")),
            .data(requestID: 7, offset: 262_144, bytes: [1, 2, 3][...]),
            .end(requestID: 7),
            .cancel(requestID: 7),
            .offer(FileOffer(path: "média/take 1.mov", size: 3 << 30, mtime: -1_234_567_890_123)),
        ]
        for message in messages {
            XCTAssertEqual(try roundTrip(message), message)
        }
    }

    func testAnOfferCutShortOrWithTrailingBytesIsMalformed() {
        var buffer = ByteBuffer()
        TransferMessage.offer(FileOffer(path: "big.iso", size: 1 << 30, mtime: 5)).encodePayload(into: &buffer)
        let bytes = Array(buffer.readableView)
        for cut in [0, 3, bytes.count - 1] {
            var short = ByteBuffer(bytes: Array(bytes.prefix(cut)))
            XCTAssertThrowsError(try TransferMessage.decode(type: TransferMessage.FrameType.offer.rawValue, payload: &short),
                                 "cut at \(cut)")
        }
        var long = ByteBuffer(bytes: bytes + [0])
        XCTAssertThrowsError(try TransferMessage.decode(type: TransferMessage.FrameType.offer.rawValue, payload: &long)) {
            XCTAssertTrue("\($0)".contains("trailing"), "\($0)")
        }
    }

    func testARequestWithUnknownFlagsIsMalformed() {
        var buffer = ByteBuffer()
        TransferMessage.request(FetchRequest(requestID: 1, path: "x", version: 2)).encodePayload(into: &buffer)
        var bytes = Array(buffer.readableView)
        XCTAssertEqual(bytes.last, 0, "no flags")
        bytes[bytes.count - 1] = 4
        var unknown = ByteBuffer(bytes: bytes)
        XCTAssertThrowsError(try TransferMessage.decode(type: TransferMessage.FrameType.request.rawValue, payload: &unknown)) {
            XCTAssertTrue("\($0)".contains("flags"), "\($0)")
        }
        var short = ByteBuffer(bytes: Array(bytes.dropLast()))
        XCTAssertThrowsError(try TransferMessage.decode(type: TransferMessage.FrameType.request.rawValue, payload: &short))
    }

    /// The digest is 32 bytes after the flags, and names bytes before the
    /// offset: a request cut inside it, or naming an empty prefix, is refused.
    func testARequestWithAPrefixDigestCutShortOrForAnEmptyPrefixIsMalformed() {
        var buffer = ByteBuffer()
        let digest = SHA256.hash(Array("start".utf8))
        TransferMessage.request(FetchRequest(requestID: 1, path: "x", version: 2, offset: 5, prefixDigest: digest))
            .encodePayload(into: &buffer)
        let bytes = Array(buffer.readableView)
        XCTAssertEqual(Array(bytes.suffix(33)), [2] + digest)
        for cut in [1, 16, 32] {
            var short = ByteBuffer(bytes: Array(bytes.dropLast(cut)))
            XCTAssertThrowsError(try TransferMessage.decode(type: TransferMessage.FrameType.request.rawValue, payload: &short),
                                 "\(cut) bytes short")
        }
        var empty = ByteBuffer()
        TransferMessage.request(FetchRequest(requestID: 1, path: "x", version: 2, offset: 5, prefixDigest: digest))
            .encodePayload(into: &empty)
        var zeroOffset = Array(empty.readableView)
        // requestID (4) | path (2 + 1) | version (8) | offset (8): set the offset to 0.
        for i in (4 + 3 + 8)..<(4 + 3 + 8 + 8) { zeroOffset[i] = 0 }
        var atZero = ByteBuffer(bytes: zeroOffset)
        XCTAssertThrowsError(try TransferMessage.decode(type: TransferMessage.FrameType.request.rawValue, payload: &atZero)) {
            XCTAssertTrue("\($0)".contains("empty prefix"), "\($0)")
        }
    }
}
