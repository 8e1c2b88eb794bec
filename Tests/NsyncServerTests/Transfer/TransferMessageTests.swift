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
        bytes[bytes.count - 1] = 2
        var unknown = ByteBuffer(bytes: bytes)
        XCTAssertThrowsError(try TransferMessage.decode(type: TransferMessage.FrameType.request.rawValue, payload: &unknown)) {
            XCTAssertTrue("\($0)".contains("flags"), "\($0)")
        }
        var short = ByteBuffer(bytes: Array(bytes.dropLast()))
        XCTAssertThrowsError(try TransferMessage.decode(type: TransferMessage.FrameType.request.rawValue, payload: &short))
    }
}
