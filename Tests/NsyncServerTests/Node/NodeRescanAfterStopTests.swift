import Foundation
import Logging
import XCTest
@testable import NsyncServer

/// A rescan asked for while a scan walks (events lost) is queued and runs
/// from the scan's completion, unless the node is stopping: `EventLoop.close`
/// runs thread-pool completions until none is left, so a stop during a
/// scan would walk the whole tree once more before the process exits.
final class NodeRescanAfterStopTests: XCTestCase {
    final class Lines: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        func append(_ line: String) { lock.lock(); lines.append(line); lock.unlock() }
        var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
    }

    struct Capture: LogHandler {
        let lines: Lines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?,
                 source: String, file: String, function: String, line: UInt) {
            lines.append("\(message)")
        }
    }

    func testAStopDuringAScanStartsNoFurtherScan() throws {
        let root = NSTemporaryDirectory() + "rescan-stop-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: root + "/tree", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        for i in 0..<200 { FileManager.default.createFile(atPath: root + "/tree/f\(i)", contents: Data("x".utf8)) }
        let config = try NodeConfig.node1OfThree(root: root)
        let lines = Lines()
        let logger = Logger(label: "rescan-stop") { _ in Capture(lines: lines) }
        let loop = try EventLoop()
        let node = try Node(config: config, loop: loop, logger: logger)
        var stopped = false
        node.onStopped = { stopped = true }
        try node.start()  // queues the start-up scan's walk
        XCTAssertTrue(node.sync.scanning)
        // Events lost while it walks (the watcher's `.rescanNeeded`): queued.
        node.handle([.rescanNeeded("events lost during the walk")])
        node.stop()
        XCTAssertTrue(loop.run(until: { stopped }, timeout: 10_000))
        loop.close()  // runs the walk's completion, and whatever it queues

        let all = lines.all
        let stopAt = all.firstIndex(of: "stopping") ?? all.count
        let scansAfterStop = all[stopAt...].filter { $0.hasPrefix("scanning ") }
        XCTAssertEqual(scansAfterStop, [], "a full walk started after stop:\n" + all.joined(separator: "\n"))
    }
}
