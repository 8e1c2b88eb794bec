import XCTest
@testable import NsyncServer

final class FrameDecoderTests: XCTestCase {
    func testFrameSplitAtEveryOffsetIsDecodedOnceComplete() throws {
        let frame = Frame(type: 4, payload: Array(0..<40))
        let wire = frame.encoded()
        for split in 0...wire.count {
            var decoder = FrameDecoder()
            decoder.append(contentsOf: wire[..<split])
            if split < wire.count {
                XCTAssertNil(try decoder.next(), "split \(split)")
            }
            decoder.append(contentsOf: wire[split...])
            XCTAssertEqual(try decoder.next(), frame, "split \(split)")
            XCTAssertNil(try decoder.next())
            XCTAssertEqual(decoder.bufferedByteCount, 0)
        }
    }

    func testZeroLengthIsAnError() {
        var decoder = FrameDecoder()
        decoder.append(contentsOf: [0, 0, 0, 0, 1])
        XCTAssertThrowsError(try decoder.next()) {
            guard case .malformed = $0 as? WireError else { return XCTFail("got \($0)") }
        }
    }

    func testOversizedLengthIsRefusedAsSoonAsTheLengthArrivesWithoutReserving() {
        var decoder = FrameDecoder()  // default 16 MiB limit
        decoder.append(contentsOf: [0xFF, 0xFF, 0xFF])
        XCTAssertNil(try decoder.next())
        decoder.append(contentsOf: [0xFF])
        XCTAssertThrowsError(try decoder.next()) {
            XCTAssertEqual($0 as? WireError, .tooLarge(0xFFFF_FFFF, limit: Frame.defaultMaxSize))
        }
        XCTAssertLessThan(decoder.reservedCapacity, 64)
    }

    func testLengthAtTheLimitIsAcceptedAndOneMoreIsRefused() throws {
        var decoder = FrameDecoder(maxFrameSize: 100)
        decoder.append(contentsOf: Frame.header(type: 1, payloadLength: 99) + Array(repeating: 7, count: 99))
        XCTAssertEqual(try decoder.next()?.payload.readableBytes, 99)
        decoder.append(contentsOf: Frame.header(type: 1, payloadLength: 100))
        XCTAssertThrowsError(try decoder.next()) {
            XCTAssertEqual($0 as? WireError, .tooLarge(101, limit: 100))
        }
    }

    func testAnnouncedLargeFrameReservesOnlyWhatArrived() throws {
        var decoder = FrameDecoder()
        decoder.append(contentsOf: Frame.header(type: 1, payloadLength: 15 << 20))
        decoder.append(contentsOf: [1, 2, 3])
        XCTAssertNil(try decoder.next())
        XCTAssertEqual(decoder.bufferedByteCount, 8)
        XCTAssertLessThan(decoder.reservedCapacity, 64)
    }

    func testAnnouncedFrameWithinTheReserveLimitFillsOneArray() throws {
        // A 256 KiB file chunk arriving in 16 KiB reads, as from the TLS engine.
        let payload = (0..<(256 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let wire = Frame(type: 18, payload: payload).encoded()
        var decoder = FrameDecoder()
        var offset = 0
        var frames: [Frame] = []
        while offset < wire.count {
            let end = min(offset + (16 << 10), wire.count)
            decoder.append(contentsOf: wire[offset..<end])
            if end < wire.count {
                // Reserved once, when the header came: never regrown, never more.
                XCTAssertGreaterThanOrEqual(decoder.reservedCapacity, payload.count)
                XCTAssertLessThan(decoder.reservedCapacity, payload.count + 4096)
            }
            while let frame = try decoder.next() { frames.append(frame) }
            offset = end
        }
        XCTAssertEqual(frames, [Frame(type: 18, payload: payload)])
        XCTAssertEqual(decoder.bufferedByteCount, 0)
    }

    func testFrameAboveTheReserveLimitGrowsWithWhatArrived() throws {
        let payload = Array(repeating: UInt8(9), count: 100_000)
        let wire = Frame(type: 3, payload: payload).encoded() + Frame(type: 4, payload: [1, 2]).encoded()
        var decoder = FrameDecoder(reserveLimit: 1000)
        decoder.append(contentsOf: wire[..<(Frame.headerSize + 10)])
        XCTAssertLessThan(decoder.reservedCapacity, 200)
        XCTAssertNil(try decoder.next())
        var offset = Frame.headerSize + 10
        while offset < wire.count {
            let end = min(offset + 777, wire.count)
            decoder.append(contentsOf: wire[offset..<end])
            XCTAssertLessThanOrEqual(decoder.reservedCapacity, 2 * decoder.bufferedByteCount + 4096)
            offset = end
        }
        XCTAssertEqual(try decoder.next(), Frame(type: 3, payload: payload))
        XCTAssertEqual(try decoder.next(), Frame(type: 4, payload: [1, 2]))
        XCTAssertNil(try decoder.next())
    }

    func testFramesBeforeAnErrorAreReturnedFirst() throws {
        var decoder = FrameDecoder(maxFrameSize: 10)
        decoder.append(contentsOf: Frame(type: 1, payload: [5]).encoded() + Frame(type: 2).encoded() + [0, 0, 0, 0])
        XCTAssertEqual(try decoder.next(), Frame(type: 1, payload: [5]))
        XCTAssertEqual(try decoder.next(), Frame(type: 2))
        XCTAssertThrowsError(try decoder.next()) {
            guard case .malformed = $0 as? WireError else { return XCTFail("got \($0)") }
        }
        XCTAssertThrowsError(try decoder.next())
    }

    func testFramesTakenOneAtATimeAcrossAppendsComeInOrder() throws {
        // The control client's pattern: one next() per read.
        var decoder = FrameDecoder()
        let a = Frame(type: 1, payload: [1]), b = Frame(type: 2, payload: [2, 2]), c = Frame(type: 3)
        decoder.append(contentsOf: a.encoded() + b.encoded())
        XCTAssertEqual(try decoder.next(), a)
        decoder.append(contentsOf: c.encoded())
        XCTAssertEqual(try decoder.next(), b)
        XCTAssertEqual(try decoder.next(), c)
        XCTAssertNil(try decoder.next())
    }

    func testABurstOfTinyFramesLeavesNoLastingQueue() throws {
        var decoder = FrameDecoder()
        let wire = (0..<13_000).flatMap { _ in Frame(type: 7).encoded() }
        decoder.append(contentsOf: wire)
        XCTAssertGreaterThan(decoder.reservedCapacity, 13_000 * 8, "the queue is counted")
        var count = 0
        while try decoder.next() != nil { count += 1 }
        XCTAssertEqual(count, 13_000)
        XCTAssertLessThan(decoder.reservedCapacity, 4096)
    }

    func testAnErrorInTheReadThatCompletesAFrameKeepsThatFrameOnly() throws {
        var decoder = FrameDecoder(maxFrameSize: 10)
        let first = Frame(type: 1, payload: [1, 2, 3]).encoded()
        decoder.append(contentsOf: first[..<3])
        decoder.append(contentsOf: first[3...] + [0, 0, 0, 99] + Frame(type: 2).encoded())
        XCTAssertEqual(try decoder.next(), Frame(type: 1, payload: [1, 2, 3]))
        XCTAssertThrowsError(try decoder.next()) {
            XCTAssertEqual($0 as? WireError, .tooLarge(99, limit: 10))
        }
        XCTAssertEqual(decoder.bufferedByteCount, 0)
    }

    func testAfterAnErrorEveryCallFailsAndBytesAreDropped() {
        var decoder = FrameDecoder(maxFrameSize: 10)
        decoder.append(contentsOf: [0, 0, 1, 0, 5, 5, 5])
        XCTAssertThrowsError(try decoder.next())
        decoder.append(contentsOf: Frame(type: 1, payload: [1]).encoded())
        XCTAssertThrowsError(try decoder.next())
        XCTAssertEqual(decoder.bufferedByteCount, 0)
    }

    func testConsumedBytesAreCompactedSoAStreamRunsInBoundedMemory() throws {
        var decoder = FrameDecoder(maxFrameSize: 1000)
        let wire = Frame(type: 2, payload: Array(repeating: 1, count: 77)).encoded()
        var stream: [UInt8] = []
        for _ in 0..<50 { stream += wire }
        var decoded = 0
        // Reads of 100 bytes that never line up with frame boundaries.
        for _ in 0..<200 {
            var offset = 0
            while offset < stream.count {
                let end = min(offset + 100, stream.count)
                decoder.append(contentsOf: stream[offset..<end])
                offset = end
                while try decoder.next() != nil { decoded += 1 }
                XCTAssertLessThanOrEqual(decoder.reservedCapacity, 1005 + 100 + 4096)
            }
        }
        XCTAssertEqual(decoded, 50 * 200)
        XCTAssertEqual(decoder.bufferedByteCount, 0)
    }

    func testRawBufferAppendMatchesCollectionAppend() throws {
        let wire = Frame(type: 8, payload: [1, 2, 3]).encoded() + Frame(type: 9, payload: [4]).encoded()
        var decoder = FrameDecoder()
        wire.withUnsafeBytes { decoder.append($0) }
        XCTAssertEqual(try decoder.next(), Frame(type: 8, payload: [1, 2, 3]))
        XCTAssertEqual(try decoder.next(), Frame(type: 9, payload: [4]))
    }

    /// Random bytes, truncated valid streams, oversized and zero lengths, fed
    /// in random read sizes (a quarter byte-at-a-time): the decoder never
    /// crashes, returns exactly the complete frames sent, and never holds more
    /// than one frame plus one read.
    func testFuzzedStreamsNeverCrashAndStayWithinTheFrameLimit() throws {
        let seed = WireTestRandom.fuzzSeed("FrameDecoder fuzz")
        var random = WireTestRandom(seed: seed)
        let cases = 100_000
        let started = Date()
        var framesChecked = 0
        // Payload bytes are cut from a random pool: drawing each byte would cost
        // most of the run.
        let pool = random.bytes(1 << 16)
        func poolBytes(_ count: Int, _ random: inout WireTestRandom) -> ArraySlice<UInt8> {
            let start = random.below(pool.count - count)
            return pool[start..<start + count]
        }
        for caseNumber in 0..<cases {
            let maxFrameSize = 1 + random.below(300)
            // Half the cases reserve announced payloads whole, half grow them with what arrives.
            let reserveLimit = random.below(2) == 0 ? maxFrameSize : random.below(maxFrameSize)
            var decoder = FrameDecoder(maxFrameSize: maxFrameSize, reserveLimit: reserveLimit)
            var stream: [UInt8] = []
            var expected: [Frame] = []
            var expectError = false
            let kind = random.below(4)
            switch kind {
            case 0:  // random bytes
                stream = Array(poolBytes(random.below(48), &random))
            case 1, 2:  // valid frames, maybe truncated
                for _ in 0..<(1 + random.below(4)) {
                    let frame = Frame(type: UInt8(random.below(256)), payload: poolBytes(random.below(maxFrameSize), &random))
                    stream += frame.encoded()
                    expected.append(frame)
                }
                if kind == 2 {
                    let keep = random.below(stream.count + 1)
                    stream.removeLast(stream.count - keep)
                    var complete = 0
                    var offset = 0
                    for frame in expected {
                        offset += Frame.headerSize + frame.payload.readableBytes
                        if offset <= keep { complete += 1 }
                    }
                    expected.removeLast(expected.count - complete)
                }
            default:  // a valid frame, then a zero or oversized length
                let frame = Frame(type: 1, payload: poolBytes(random.below(maxFrameSize), &random))
                stream = frame.encoded()
                expected = [frame]
                let bad: UInt32 = switch random.below(4) {
                case 0: 0
                case 1: UInt32.max
                case 2: UInt32(maxFrameSize) + 1
                default: UInt32(maxFrameSize) + 1 + UInt32(random.below(1 << 24))
                }
                stream += withUnsafeBytes(of: bad.bigEndian) { Array($0) } + poolBytes(random.below(8), &random)
                expectError = true
            }
            let byteAtATime = random.below(4) == 0
            var decoded: [Frame] = []
            var failed = false
            var offset = 0
            var largestRead = 0
            while offset < stream.count && !failed {
                let read = byteAtATime ? 1 : 1 + random.below(64)
                let end = min(offset + read, stream.count)
                decoder.append(contentsOf: stream[offset..<end])
                largestRead = max(largestRead, end - offset)
                // Held: at most one partial frame plus this read. Reserved: the
                // same bound for the largest read so far, plus the unfilled rest
                // of the frame being read (announced up to the reserve limit, or
                // doubled from what arrived), plus malloc's rounding per array.
                // (Plain comparisons: XCTAssert in this inner loop would dominate the run time.)
                if decoder.bufferedByteCount > maxFrameSize + Frame.headerSize + (end - offset)
                    || decoder.reservedCapacity > 2 * maxFrameSize + Frame.headerSize + largestRead + 32 * 16 {
                    XCTFail("case \(caseNumber): holds \(decoder.bufferedByteCount) bytes in \(decoder.reservedCapacity) reserved, limit \(maxFrameSize), read \(end - offset)")
                }
                offset = end
                do {
                    while let frame = try decoder.next() { decoded.append(frame) }
                } catch {
                    failed = true
                    if (try? decoder.next()) != nil { XCTFail("case \(caseNumber): an error must stick") }
                }
            }
            if kind != 0 {
                if decoded != expected || failed != expectError {
                    XCTFail("case \(caseNumber): decoded \(decoded.count) of \(expected.count) frames, error \(failed), expected error \(expectError)")
                }
                framesChecked += decoded.count
            }
            if testRun?.failureCount ?? 0 > 0 {
                XCTFail("first failure at case \(caseNumber); replay with NSYNC_FUZZ_SEED=\(seed)")
                break
            }
        }
        let seconds = Date().timeIntervalSince(started)
        print("FrameDecoder fuzz: \(cases) cases, \(framesChecked) frames checked in \(String(format: "%.2f", seconds)) s")
    }
}
