import XCTest
@testable import NsyncServer

final class IndexCommandCodecTests: XCTestCase {
    let hash = (0..<32).map { UInt8($0) }

    var sample: IndexCommand {
        IndexCommand(origin: "node-1", changes: [
            .put(.file("dir/caf\u{E9}.txt", size: 1 << 40, mode: 0o7777, mtime: -5, hash: hash, base: 17)),
            .put(.directory("dir", mode: 0o755, mtime: Int64.max, base: 0)),
            .put(.symlink("link", target: String(repeating: "t/", count: 2048), mtime: 0, base: UInt64.max)),
            .put(.deletion("gone", mtime: 1_700_000_000_000_000_000, base: 3)),
            .hold(path: "dir/caf\u{E9}.txt", version: 9),
            .forget(path: "gone", version: 4),
        ])
    }

    func testEveryChangeKindRoundTrips() throws {
        let command = sample
        let decoded = try IndexCommand(decoding: command.encoded())
        XCTAssertEqual(decoded, command)
        XCTAssertEqual(IndexCommand(origin: "n", changes: []), try IndexCommand(decoding: IndexCommand(origin: "n", changes: []).encoded()))
    }

    func testDecodedPathsKeepTheirExactBytes() throws {
        let command = IndexCommand(origin: "n", changes: [.hold(path: "cafe\u{301}", version: 1)])
        let decoded = try IndexCommand(decoding: command.encoded())
        XCTAssertTrue(decoded.changes[0].path.utf8.elementsEqual("cafe\u{301}".utf8))
    }

    /// Bytes of a one-change hold command with `pathBytes` as its path.
    func holdCommand(pathBytes: [UInt8], origin: [UInt8] = Array("n1".utf8)) -> [UInt8] {
        [1, UInt8(origin.count)] + origin + [0, 0, 0, 1, 2, UInt8(pathBytes.count >> 8), UInt8(pathBytes.count & 0xFF)]
            + pathBytes + [0, 0, 0, 0, 0, 0, 0, 1]
    }

    func testInvalidUTF8PathIsRefusedOnDecode() {
        XCTAssertNoThrow(try IndexCommand(decoding: holdCommand(pathBytes: Array("ok".utf8))))
        for bytes: [UInt8] in [[0xFF, 0xFE], [0x61, 0xC3], [0xED, 0xA0, 0x80], [0xC0, 0xAF]] {
            XCTAssertThrowsError(try IndexCommand(decoding: holdCommand(pathBytes: bytes)), "\(bytes)") {
                XCTAssertEqual($0 as? WireError, .malformed("invalid UTF-8"))
            }
        }
    }

    func testInvalidPathsAndOriginsAreRefusedOnDecode() {
        // (An empty path is caught even earlier: no valid change is that short.)
        XCTAssertThrowsError(try IndexCommand(decoding: holdCommand(pathBytes: [])))
        for path in ["../x", "/x", ".", ".nsync/raft", "a//b", "a\u{0}b"] {
            XCTAssertThrowsError(try IndexCommand(decoding: holdCommand(pathBytes: Array(path.utf8))), path.debugDescription) {
                guard case .malformed = $0 as? WireError else { return XCTFail("\(path.debugDescription): \($0)") }
            }
        }
        XCTAssertThrowsError(try IndexCommand(decoding: holdCommand(pathBytes: Array(repeating: 0x61, count: 4097)))) {
            XCTAssertEqual($0 as? WireError, .tooLarge(4097, limit: 4096))
        }
        for origin in ["", "a b", "é"] {
            XCTAssertThrowsError(try IndexCommand(decoding: holdCommand(pathBytes: [0x61], origin: Array(origin.utf8))), origin)
        }
    }

    func testChangeCountIsCheckedAgainstTheLimitAndTheBytesPresent() {
        let tooMany = [1, 2, 0x6E, 0x31] + withUnsafeBytes(of: UInt32(IndexCommand.maxChanges + 1).bigEndian) { Array($0) }
        XCTAssertThrowsError(try IndexCommand(decoding: tooMany)) {
            XCTAssertEqual($0 as? WireError, .tooLarge(IndexCommand.maxChanges + 1, limit: IndexCommand.maxChanges))
        }
        // 100,000 announced, 12 bytes present: refused before reserving anything.
        let liar = [1, 2, 0x6E, 0x31] + withUnsafeBytes(of: UInt32(IndexCommand.maxChanges).bigEndian) { Array($0) } + [UInt8](repeating: 0, count: 12)
        XCTAssertThrowsError(try IndexCommand(decoding: liar)) {
            guard case .truncated = $0 as? WireError else { return XCTFail("\($0)") }
        }
    }

    func testMalformedFieldsAreRefused() {
        var bytes = holdCommand(pathBytes: [0x61])
        bytes[0] = 2  // a format this node does not read
        XCTAssertThrowsError(try IndexCommand(decoding: bytes)) { XCTAssertTrue("\($0)".contains("format 2")) }
        bytes = holdCommand(pathBytes: [0x61])
        bytes[8] = 9  // change tag
        XCTAssertThrowsError(try IndexCommand(decoding: bytes)) { XCTAssertEqual($0 as? WireError, .unknownType(9)) }
        XCTAssertThrowsError(try IndexCommand(decoding: holdCommand(pathBytes: [0x61]) + [0])) {
            XCTAssertEqual($0 as? WireError, .malformed("index command: 1 trailing bytes"))
        }
        var put = IndexCommand(origin: "n", changes: [.put(.file("f", size: 1, mode: 0o644, mtime: 0, hash: hash, base: 0))]).encoded()
        let kindOffset = 1 + 1 + 1 + 4 + 1 + 2 + 1
        put[kindOffset] = 5
        XCTAssertThrowsError(try IndexCommand(decoding: put)) { XCTAssertEqual($0 as? WireError, .malformed("unknown file kind 5")) }
        put[kindOffset] = 1
        put[kindOffset + 1 + 8 + 4 + 8] = 31  // hash length
        XCTAssertThrowsError(try IndexCommand(decoding: put)) { XCTAssertEqual($0 as? WireError, .malformed("content hash of 31 bytes")) }
    }

    func testTruncationAtEveryOffsetIsAnError() {
        let bytes = sample.encoded()
        for length in 0..<bytes.count {
            XCTAssertThrowsError(try IndexCommand(decoding: Array(bytes[..<length])), "length \(length)")
        }
    }

    /// Valid commands with bytes flipped, cut, inserted or overwritten: decode
    /// never crashes, and anything it accepts re-encodes to the same bytes and
    /// applies without trapping.
    func testFuzzedCommandBytesNeverCrashTheDecoder() {
        let seed = WireTestRandom.fuzzSeed("IndexCommand fuzz")
        var random = WireTestRandom(seed: seed)
        var scenario = IndexScenario(seed: seed ^ 0x5EED)
        var index = FileIndex()
        let started = Date()
        var accepted = 0
        let cases = 20_000
        for caseNumber in 0..<cases {
            let command = scenario.command(in: index, maxChanges: 6)
            var bytes = command.encoded()
            for _ in 0..<(1 + random.below(3)) {
                switch random.below(5) {
                case 0: bytes[random.below(bytes.count)] ^= UInt8(1 << random.below(8))
                case 1: bytes[random.below(bytes.count)] = UInt8(random.below(256))
                case 2: bytes.removeLast(random.below(bytes.count))
                case 3: bytes.insert(UInt8(random.below(256)), at: random.below(bytes.count + 1))
                default: bytes = random.bytes(random.below(40))
                }
                if bytes.isEmpty { break }
            }
            if let decoded = try? IndexCommand(decoding: bytes) {
                accepted += 1
                XCTAssertEqual(decoded.encoded(), bytes, "case \(caseNumber), seed \(seed)")
                let outcomes = index.apply(decoded, at: UInt64(caseNumber + 1))
                XCTAssertEqual(outcomes.count, decoded.changes.count)
            }
            if testRun?.failureCount ?? 0 > 0 { return XCTFail("stopped at case \(caseNumber); replay with NSYNC_FUZZ_SEED=\(seed)") }
        }
        let seconds = Date().timeIntervalSince(started)
        print("IndexCommand fuzz: \(cases) cases, \(accepted) still decodable, \(String(format: "%.2f", seconds)) s")
    }
}
