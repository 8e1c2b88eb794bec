import Foundation
import XCTest
@testable import NsyncServer

final class SHA256Tests: XCTestCase {
    func testKnownVectorsFromFIPS180() {
        XCTAssertEqual(SHA256.hex(SHA256.hash([])),
                       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(SHA256.hash(Array("abc".utf8))),
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex(SHA256.hash([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testIncrementalUpdatesInRandomPiecesEqualOneShotHash() {
        let seed = syncTestSeed("SHA256 pieces")
        var rng = SyncTestRandom(seed: seed)
        let data = (0..<100_000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let expected = SHA256.hash(data)
        let hasher = SHA256()
        for _ in 0..<20 {
            var offset = 0
            while offset < data.count {
                let length = min(Int(rng.next() % 5000), data.count - offset)
                if rng.next() % 2 == 0 {
                    hasher.update(data[offset..<(offset + length)])
                } else {
                    data.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + length)])) }
                }
                offset += length
            }
            XCTAssertEqual(hasher.finalize(), expected, "seed \(seed)")
        }
    }

    func testFinalizeResetsForTheNextInputAndResetDiscardsInput() {
        let hasher = SHA256()
        hasher.update("abc")
        XCTAssertEqual(hasher.finalize(), SHA256.hash(Array("abc".utf8)))
        hasher.update("garbage")
        hasher.reset()
        XCTAssertEqual(hasher.finalize().count, 32)
        XCTAssertEqual(SHA256.hex(hasher.finalize()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    func testDigestSoFarIsThePrefixDigestAndHashingGoesOn() {
        let hasher = SHA256()
        hasher.update("hello, ")
        XCTAssertEqual(hasher.digestSoFar(), SHA256.hash(Array("hello, ".utf8)))
        XCTAssertEqual(hasher.digestSoFar(), SHA256.hash(Array("hello, ".utf8)), "asking twice changes nothing")
        hasher.update("world")
        XCTAssertEqual(hasher.finalize(), SHA256.hash(Array("hello, world".utf8)))
    }

    func testHexIsLowerCaseTwoDigitsPerByte() {
        XCTAssertEqual(SHA256.hex([0x00, 0x0f, 0xa0, 0xff]), "000fa0ff")
    }

}

