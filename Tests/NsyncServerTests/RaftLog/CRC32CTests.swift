@testable import NsyncServer
import XCTest

final class CRC32CTests: XCTestCase {
    func testKnownVectorsMatch() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([]), 0)
        // RFC 3720 (iSCSI) appendix B.4.
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }), 0x113F_DB5C)
    }

    func testSlicedComputationMatchesBitwiseReferenceAtEveryLengthAndAlignment() {
        var generator = StorageTestRandom(seed: 0xC0FFEE)
        let bytes = (0..<300).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for start in 0..<9 {
            for end in stride(from: start, through: bytes.count, by: 7) {
                XCTAssertEqual(CRC32C.checksum(bytes, in: start..<end), bitwiseCRC32C(bytes[start..<end]),
                               "range \(start)..<\(end)")
            }
        }
    }

    func testChecksumCanBeBuiltFromPieces() {
        let a = Array("hello, ".utf8), b = Array("world: a longer second piece".utf8)
        XCTAssertEqual(CRC32C.update(CRC32C.checksum(a), b), CRC32C.checksum(a + b))
        XCTAssertEqual(CRC32C.update(CRC32C.checksum(a), (a + b)[a.count...]), CRC32C.checksum(a + b))
    }

    /// One bit at a time, straight from the definition.
    private func bitwiseCRC32C(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }
}
