import Foundation
import XCTest
@testable import NsyncServer

final class InotifyTests: XCTestCase {
    func testParserDecodesPaddedRecordsInOrder() {
        let events = [
            InotifyEvent(watch: 1, mask: [.create], name: Array("a.txt".utf8)),
            InotifyEvent(watch: 2, mask: [.movedFrom, .isDirectory], cookie: 77, name: Array("dir".utf8)),
            InotifyEvent(watch: 2, mask: [.deleteSelf]),
            InotifyEvent(watch: 3, mask: [.closeWrite], name: Array(String(repeating: "n", count: 255).utf8)),
        ]
        let parsed = InotifyEventParser.parse(events.flatMap { $0.encoded() })
        XCTAssertEqual(parsed.events, events)
        XCTAssertEqual(parsed.malformedBytes, 0)
        XCTAssertEqual(parsed.events[1].nameText, "dir")
    }

    func testQueueOverflowRecordHasWatchMinusOneAndNoName() {
        let bytes = InotifyEvent(watch: -1, mask: .queueOverflow).encoded()
        XCTAssertEqual(bytes.count, 16)
        let parsed = InotifyEventParser.parse(bytes)
        XCTAssertEqual(parsed.events, [InotifyEvent(watch: -1, mask: .queueOverflow)])
    }

    func testTruncatedOrOverlongRecordsStopTheParseWithoutOverrun() {
        let good = InotifyEvent(watch: 1, mask: .modify, name: Array("f".utf8)).encoded()
        var lying = InotifyEvent(watch: 2, mask: .modify).encoded()
        lying[12] = 0xff; lying[13] = 0xff; lying[14] = 0xff; lying[15] = 0x7f // len far beyond the buffer
        let parsed = InotifyEventParser.parse(good + lying + [1, 2, 3])
        XCTAssertEqual(parsed.events.count, 1)
        XCTAssertEqual(parsed.malformedBytes, 19)
        XCTAssertEqual(InotifyEventParser.parse(Array(good.prefix(10))).malformedBytes, 10)
        XCTAssertEqual(InotifyEventParser.parse([]).events, [])
    }

    func testRandomBytesNeverCrashTheParser() {
        let seed = syncTestSeed("inotify parser fuzz")
        var rng = SyncTestRandom(seed: seed)
        for _ in 0..<5000 {
            let count = Int(rng.next() % 300)
            var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            // Bias the length fields toward small values so records do parse.
            if count >= 16 && rng.next() % 2 == 0 { bytes[12] = UInt8(rng.next() % 64); bytes[13] = 0; bytes[14] = 0; bytes[15] = 0 }
            let parsed = InotifyEventParser.parse(bytes)
            let minimumConsumed = parsed.events.reduce(0) { $0 + 16 + $1.name.count }
            XCTAssertLessThanOrEqual(minimumConsumed + parsed.malformedBytes, count, "seed \(seed)")
            XCTAssertTrue(parsed.events.allSatisfy { $0.name.count <= count && !$0.name.contains(0) }, "seed \(seed)")
        }
    }

    func testRealDescriptorReportsCloseWriteWithTheName() throws {
        let dir = try SyncScratchDirectory("inotify")
        let inotify = try Inotify()
        XCTAssertEqual(try inotify.readEvents(), [], "non-blocking: nothing queued yet")
        let watch = try inotify.addWatch(dir.path, mask: [.closeWrite, .create, .onlyDirectory])
        try dir.write("f", "x")
        var seen: [InotifyEvent] = []
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline && !seen.contains(where: { $0.mask.contains(.closeWrite) }) {
            var pfd = pollfd(fd: inotify.fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, 50)
            seen += try inotify.readEvents()
        }
        XCTAssertEqual(seen.map(\.mask), [.create, .closeWrite])
        XCTAssertTrue(seen.allSatisfy { $0.watch == watch && $0.nameText == "f" })
        XCTAssertThrowsError(try inotify.addWatch(dir.url("f"), mask: [.modify, .onlyDirectory])) {
            XCTAssertTrue(($0 as? SystemError)?.isNotDirectory ?? false)
        }
        XCTAssertNotNil(Inotify.kernelLimit("max_user_watches"))
    }
}
