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
            .header(FetchHeader(requestID: 14, status: .ok, size: 2 << 30, allocated: 64 << 20)),
            .data(requestID: 7, offset: 262_144, bytes: [1, 2, 3][...]),
            .end(requestID: 7),
            .cancel(requestID: 7),
            .offer(FileOffer(path: "média/take 1.mov", size: 3 << 30, mtime: -1_234_567_890_123)),
            .request(FetchRequest(requestID: 10, path: "db/main.sqlite", version: 44,
                                  blocks: BlockDigests(blockSize: 128 << 10, digests: SHA256.hash([1]) + SHA256.hash([2])))),
            .request(FetchRequest(requestID: 11, path: "db/main.sqlite", version: 44, offset: 256 << 10, noRedirect: true,
                                  blocks: BlockDigests(blockSize: 128 << 10, digests: SHA256.hash([3])))),
            .same(requestID: 10, offset: 128 << 10, length: 5 << 20),
            .zeros(requestID: 12, offset: 0, length: 3 << 30),
            .request(FetchRequest(requestID: 12, path: "vm/disk.img", version: 45, takesZeros: true)),
            .request(FetchRequest(requestID: 13, path: "db/main.sqlite", version: 44, offset: 1 << 20, noRedirect: true,
                                  prefixDigest: SHA256.hash([4]), blocks: BlockDigests(blockSize: 128 << 10, digests: SHA256.hash([5])),
                                  takesZeros: true)),
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

    func testAHeaderSaysWhatTheFileTakesOnDiskAtMostItsSize() throws {
        XCTAssertEqual(FetchHeader(requestID: 1, status: .ok, size: 10).allocated, 10, "unknown: its size")
        XCTAssertEqual(FetchHeader(requestID: 1, status: .ok, size: 10, allocated: 4_096).allocated, 10,
                       "a small dense file takes a whole block: still no more than its size")
        XCTAssertEqual(FetchHeader(requestID: 1, status: .ok, size: 1 << 30, allocated: 1 << 20).allocated, 1 << 20)

        // A peer claiming more than the size is malformed, like any field out of range.
        var buffer = ByteBuffer()
        TransferMessage.header(FetchHeader(requestID: 3, status: .ok, size: 100, allocated: 100)).encodePayload(into: &buffer)
        var bytes = Array(buffer.readableView)
        bytes[bytes.count - 1] = 101
        var wrong = ByteBuffer(bytes: bytes)
        XCTAssertThrowsError(try TransferMessage.decode(type: TransferMessage.FrameType.header.rawValue, payload: &wrong)) {
            XCTAssertTrue("\($0)".contains("101 bytes allocated of a file of 100"), "\($0)")
        }
        // Without it (an older header layout): cut short, malformed.
        var short = ByteBuffer(bytes: Array(bytes.dropLast(8)))
        XCTAssertThrowsError(try TransferMessage.decode(type: TransferMessage.FrameType.header.rawValue, payload: &short))
    }

    func testARequestWithUnknownFlagsIsMalformed() {
        var buffer = ByteBuffer()
        TransferMessage.request(FetchRequest(requestID: 1, path: "x", version: 2)).encodePayload(into: &buffer)
        var bytes = Array(buffer.readableView)
        XCTAssertEqual(bytes.last, 0, "no flags")
        bytes[bytes.count - 1] = 16
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

    /// Block digests follow the flags: a size (a power of two from 64 KiB to
    /// 16 MiB), a count (1 to 8192) and the digests. Anything else, or a
    /// `.same` of no bytes, is malformed. A request may start inside a
    /// block and name a prefix digest too (a resume).
    func testBlockDigestsOutOfBoundsAndEmptySameAreMalformed() {
        func encoded(offset: UInt64 = 0, blockSize: UInt32 = 128 << 10, count: UInt32 = 2, digests: Int = 2,
                     flags: UInt8 = 4) -> ByteBuffer {
            var buffer = ByteBuffer()
            buffer.writeInteger(UInt32(1))
            buffer.writeShortString("x")
            buffer.writeInteger(UInt64(2))
            buffer.writeInteger(offset)
            buffer.writeInteger(UInt64.max)
            buffer.writeInteger(flags)
            if flags & 2 != 0 { buffer.writeBytes(SHA256.hash([0])) }
            buffer.writeInteger(blockSize)
            buffer.writeInteger(count)
            for i in 0..<digests { buffer.writeBytes(SHA256.hash([UInt8(truncatingIfNeeded: i)])) }
            return buffer
        }
        var good = encoded()
        XCTAssertNoThrow(try TransferMessage.decode(type: TransferMessage.FrameType.request.rawValue, payload: &good))
        var inside = encoded(offset: 4096)
        XCTAssertNoThrow(try TransferMessage.decode(type: TransferMessage.FrameType.request.rawValue, payload: &inside))
        // A `.part` resumed after a restart names its prefix and the held blocks.
        var both = encoded(offset: 128 << 10, flags: 6)
        XCTAssertNoThrow(try TransferMessage.decode(type: TransferMessage.FrameType.request.rawValue, payload: &both))
        let cases: [(String, ByteBuffer, String)] = [
            ("a block size below 64 KiB", encoded(blockSize: 32 << 10), "block size"),
            ("a block size above 16 MiB", encoded(blockSize: 32 << 20), "block size"),
            ("a block size not a power of two", encoded(blockSize: 96 << 10), "block size"),
            ("no blocks", encoded(count: 0, digests: 0), "block digests"),
            ("too many blocks", encoded(count: 8193, digests: 0), "block digests"),
            ("fewer digests than counted", encoded(count: 3, digests: 2), ""),
            ("more digests than counted", encoded(count: 1, digests: 2), "trailing"),
        ]
        for (what, buffer, reason) in cases {
            var payload = buffer
            XCTAssertThrowsError(try TransferMessage.decode(type: TransferMessage.FrameType.request.rawValue, payload: &payload),
                                 what) {
                XCTAssertTrue(reason.isEmpty || "\($0)".contains(reason), "\(what): \($0)")
            }
        }
        var same = ByteBuffer()
        TransferMessage.same(requestID: 1, offset: 0, length: 1).encodePayload(into: &same)
        var bytes = Array(same.readableView)
        bytes[bytes.count - 1] = 0
        var empty = ByteBuffer(bytes: bytes)
        XCTAssertThrowsError(try TransferMessage.decode(type: TransferMessage.FrameType.same.rawValue, payload: &empty)) {
            XCTAssertTrue("\($0)".contains("same bytes"), "\($0)")
        }
        // `.zeros` likewise: no bytes, or past the end of any file.
        for (offset, length) in [(UInt64(0), UInt64(0)), (UInt64.max, UInt64(2))] {
            var zeros = ByteBuffer()
            zeros.writeInteger(UInt32(1))
            zeros.writeInteger(offset)
            zeros.writeInteger(length)
            XCTAssertThrowsError(try TransferMessage.decode(type: TransferMessage.FrameType.zeros.rawValue, payload: &zeros)) {
                XCTAssertTrue("\($0)".contains("zeros bytes"), "\($0)")
            }
        }
    }

    func testBlockSizeGrowsWithTheFileSoADigestListStaysUnder256KiB() {
        XCTAssertEqual(BlockDigests.blockSize(for: 1 << 20), 128 << 10)
        XCTAssertEqual(BlockDigests.blockSize(for: 1 << 30), 128 << 10, "8192 blocks of 128 KiB")
        XCTAssertEqual(BlockDigests.blockSize(for: (1 << 30) + 1), 256 << 10)
        XCTAssertEqual(BlockDigests.blockSize(for: 100 << 30), 16 << 20)
        XCTAssertEqual(BlockDigests.blockSize(for: 128 << 30), 16 << 20)
        XCTAssertNil(BlockDigests.blockSize(for: (128 << 30) + 1), "over 8192 blocks of 16 MiB")
    }

    /// The server compares each block it reads with the fetcher's digest
    /// for the same index, a short last block included.
    func testServerMatchesBlocksByIndexFromTheReadsOffset() {
        let size = 64 << 10
        let file = (0..<(3 * size + 100)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var held = file
        held[size + 5] ^= 1  // block 1 differs
        let digests = stride(from: 0, to: held.count, by: size).flatMap { SHA256.hash(Array(held[$0..<min($0 + size, held.count)])) }
        let blocks = BlockDigests(blockSize: UInt32(size), digests: digests)
        XCTAssertEqual(TransferServer.Session.matches(file, at: 0, blocks), [true, false, true, true])
        XCTAssertEqual(TransferServer.Session.matches(Array(file[(2 * size)...]), at: UInt64(2 * size), blocks), [true, true])
        XCTAssertEqual(TransferServer.Session.matches(Array(file[100..<size]), at: 100, blocks), [], "not from a block boundary")
        var longer = file + [9]
        XCTAssertEqual(TransferServer.Session.matches(Array(longer[(3 * size)...]), at: UInt64(3 * size), blocks), [false],
                       "a last block with one more byte")
        longer = file + Array(repeating: 0, count: size)
        XCTAssertEqual(TransferServer.Session.matches(Array(longer[(4 * size)...]), at: UInt64(4 * size), blocks), [false],
                       "a block past the held file's end")
    }
}
