import XCTest
@testable import NsyncServer

/// The Raft wire codec: every kind round-trips; hostile bytes throw, never crash.
final class RaftMessageCodecTests: XCTestCase {
    static let samples: [RaftMessage] = {
        let kinds: [RaftMessage.Kind] = [
            .preVote(lastIndex: 7, lastTerm: 3),
            .preVoteResponse(granted: true),
            .vote(lastIndex: .max, lastTerm: 0),
            .voteResponse(granted: false),
            .append(prevIndex: 10, prevTerm: 2, entries: [
                RaftEntry(term: 2, index: 11, kind: .noop),
                RaftEntry(term: 3, index: 12, data: Array("hello".utf8)),
            ], commit: 9),
            .append(prevIndex: 0, prevTerm: 0, entries: [], commit: 0),
            .appendResponse(.accepted(matchIndex: 12)),
            .appendResponse(.rejected(rejectedIndex: 12, hintIndex: 4, hintTerm: 1)),
            .heartbeat(commit: 5),
            .heartbeatResponse,
            .installSnapshot(SnapshotChunk(metadata: SnapshotMetadata(index: 100, term: 4, members: ["a", "bé", "c"]),
                                           offset: 4096, data: [1, 2, 3], done: true)),
            .installSnapshotResponse(index: 100, term: 4, nextOffset: 8192),
            .propose(id: ProposalID(77), data: [0, 255]),
            .proposeResponse(id: ProposalID(77), result: .appended(index: 12, term: 3)),
            .proposeResponse(id: ProposalID(78), result: .failed(.noLeader)),
        ]
        return kinds.map { RaftMessage(from: "node-a", to: "node-b", term: 42, kind: $0) }
    }()

    func testEveryMessageKindRoundTrips() throws {
        for message in Self.samples {
            var buffer = ByteBuffer(bytes: message.encoded())
            XCTAssertEqual(try RaftMessage.decode(from: &buffer), message)
        }
    }

    func testTruncatedOrExtendedEncodingsAreRejected() throws {
        for message in Self.samples {
            let bytes = message.encoded()
            for cut in 0..<bytes.count {
                var buffer = ByteBuffer(bytes: Array(bytes[..<cut]))
                XCTAssertThrowsError(try RaftMessage.decode(from: &buffer), "\(message.kind) cut at \(cut)")
            }
            var buffer = ByteBuffer(bytes: bytes + [0])
            XCTAssertThrowsError(try RaftMessage.decode(from: &buffer)) {
                XCTAssertTrue("\($0)".contains("trailing"), "\($0)")
            }
        }
    }

    func testHostileCountsAndLengthsThrowWithoutAllocatingThem() throws {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt8(5))
        buffer.writeShortString("a")
        buffer.writeShortString("b")
        buffer.writeInteger(UInt64(1))
        buffer.writeInteger(UInt64(0))
        buffer.writeInteger(UInt64(0))
        buffer.writeInteger(UInt64(0))
        buffer.writeInteger(UInt32.max)
        XCTAssertThrowsError(try RaftMessage.decode(from: &buffer)) {
            XCTAssertEqual($0 as? WireError, .tooLarge(Int(UInt32.max), limit: RaftMessage.maxEntries))
        }
        // Non-contiguous entry indexes are malformed.
        var append = RaftMessage(from: "a", to: "b", term: 1, kind: .append(prevIndex: 1, prevTerm: 1, entries: [
            RaftEntry(term: 1, index: 2), RaftEntry(term: 1, index: 4),
        ], commit: 0)).encoded()
        var appendBuffer = ByteBuffer(bytes: append)
        XCTAssertThrowsError(try RaftMessage.decode(from: &appendBuffer))
        // An empty sender name is malformed.
        append = RaftMessage(from: "", to: "b", term: 1, kind: .heartbeatResponse).encoded()
        appendBuffer = ByteBuffer(bytes: append)
        XCTAssertThrowsError(try RaftMessage.decode(from: &appendBuffer))
        var unknown = ByteBuffer(bytes: [99])
        XCTAssertThrowsError(try RaftMessage.decode(from: &unknown)) { XCTAssertEqual($0 as? WireError, .unknownType(99)) }
    }

    /// Seeded fuzzing: random bytes and mutations of valid messages must either
    /// decode into something that re-encodes to the same bytes, or throw.
    func testSeededFuzzDecodeNeverCrashes() throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["NSYNC_FUZZ_SEED"] ?? "") ?? 20_240_601
        var random = RaftRandom(seed: seed)
        var decoded = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 4 == 0 {
                bytes = (0..<Int(random.next() % 64)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            } else {
                bytes = Self.samples[Int(random.next() % UInt64(Self.samples.count))].encoded()
                for _ in 0..<(1 + Int(random.next() % 4)) {
                    let position = Int(random.next() % UInt64(bytes.count))
                    switch random.next() % 3 {
                    case 0: bytes[position] = UInt8(truncatingIfNeeded: random.next())
                    case 1: bytes.removeSubrange(position...)
                    default: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: position)
                    }
                    if bytes.isEmpty { break }
                }
            }
            var buffer = ByteBuffer(bytes: bytes)
            if let message = try? RaftMessage.decode(from: &buffer) {
                decoded += 1
                XCTAssertEqual(message.encoded(), bytes, "seed \(seed) round \(round): decode/encode is not an identity")
            }
        }
        XCTAssertGreaterThan(decoded, 100, "the fuzzer should also produce valid messages (seed \(seed))")
    }
}
