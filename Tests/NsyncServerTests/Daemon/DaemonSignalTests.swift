import Foundation
import XCTest
@testable import NsyncServer

/// SIGTERM and SIGINT stop a real nsyncd cleanly: exit status 0 within 5 s,
/// even in the middle of a transfer; nothing half-written in PATH (partial
/// files live only under PATH/.nsync); the lock released, so the same
/// command starts again at once and finishes what was interrupted.
final class DaemonSignalTests: XCTestCase {
    private var scratch: DaemonScratch!

    override func setUpWithError() throws {
        scratch = try DaemonScratch(name)
    }

    override func tearDown() {
        scratch?.remove()
    }

    /// Every path under `root` outside `.nsync`, relative.
    private func pathsOutsideState(_ root: String) -> [String] {
        let all = (FileManager.default.enumerator(atPath: root)?.allObjects as? [String]) ?? []
        return all.filter { $0 != ".nsync" && !$0.hasPrefix(".nsync/") }.sorted()
    }

    /// `count` MiB whose every MiB differs (a seeded block with its index in front).
    private func writeLargeFile(_ path: String, mebibytes count: Int, seed: UInt64) throws {
        var random = LoopTestSupport.SeededRandom(seed: seed)
        var block = [UInt8](repeating: 0, count: 1 << 20)
        for i in block.indices where i % 8 == 0 {
            withUnsafeBytes(of: random.next()) { word in
                for j in 0..<8 { block[i + j] = word[j] }
            }
        }
        FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        defer { try? handle.close() }
        for index in 0..<count {
            withUnsafeBytes(of: UInt64(index)) { word in
                for j in 0..<8 { block[j] = word[j] }
            }
            try handle.write(contentsOf: block)
        }
    }

    /// Sends `signal` and returns the exit status and how long the exit took.
    private func stop(_ daemon: DaemonProcess, with signal: Int32) -> (status: Int32?, seconds: TimeInterval) {
        let started = Date()
        daemon.signal(signal)
        let status = daemon.waitForExit(timeout: 10)
        return (status, Date().timeIntervalSince(started))
    }

    func testSigtermDuringATransferExitsZeroInFiveSecondsLeavingNoPartialFileInPath() throws {
        let seed = LoopTestSupport.seed()
        let cluster = try DaemonCluster(names: ["node1", "node2"], certificates: TestCertificates.shared, in: scratch)
        let source = cluster.member("node1").root
        let target = cluster.member("node2").root
        try writeLargeFile(source + "/big.bin", mebibytes: 128, seed: seed)
        try scratch.makeDirectory("node1/docs")
        for i in 0..<20 {
            FileManager.default.createFile(atPath: "\(source)/docs/note-\(i).txt", contents: Data("note \(i) \(seed)\n".utf8))
        }
        let node1 = try cluster.start("node1", in: scratch)
        var node2 = try cluster.start("node2", in: scratch)

        // Catch node2 with a partial file: poll its temporary directory tightly
        // (the whole transfer takes well under a second on loopback).
        let temporary = target + "/.nsync/tmp"
        var partial: String?
        DaemonWait.until("node2 to be receiving big.bin", timeout: 30, context: { node1.log + node2.log }) {
            let deadline = Date().addingTimeInterval(0.05)
            repeat {
                for name in (try? FileManager.default.contentsOfDirectory(atPath: temporary)) ?? [] where name.hasSuffix(".part") {
                    let size = (try? FileManager.default.attributesOfItem(atPath: temporary + "/" + name)[.size] as? Int) ?? 0
                    if size > 0 && size < 128 << 20 { partial = name; return true }
                }
                usleep(1_000)
            } while Date() < deadline
            return FileManager.default.fileExists(atPath: target + "/big.bin")
        }
        let (status, seconds) = stop(node2, with: SIGTERM)
        print("SIGTERM to node2 \(partial.map { "while \($0) was partial" } ?? "after big.bin had arrived"): exit \(status.map(String.init) ?? "none") after \(String(format: "%.3f", seconds)) s")
        XCTAssertEqual(status, 0, node2.log)
        XCTAssertLessThan(seconds, 5, node2.log)
        XCTAssertTrue(node2.log.contains("stopped"), node2.log)

        // Only complete files under their real names outside .nsync.
        let expected = Set(pathsOutsideState(source))
        for path in pathsOutsideState(target) {
            XCTAssertTrue(expected.contains(path), "node2's PATH holds \(path), which is not a synced path: \(pathsOutsideState(target))")
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: target + "/" + path, isDirectory: &isDirectory), !isDirectory.boolValue {
                XCTAssertTrue(FileManager.default.contentsEqual(atPath: target + "/" + path, andPath: source + "/" + path),
                              "\(path) on node2 is not the complete file")
            }
        }

        // The lock is released: the same command starts at once and completes big.bin.
        node2 = try scratch.start(cluster.arguments("node2"), log: "node2-restarted.log")
        DaemonWait.until("the restarted node2 to hold big.bin", timeout: 30, context: { node2.log }) {
            FileManager.default.fileExists(atPath: target + "/big.bin")
        }
        XCTAssertFalse(node2.log.contains("already running"), node2.log)
        XCTAssertTrue(FileManager.default.contentsEqual(atPath: target + "/big.bin", andPath: source + "/big.bin"))
        DaemonWait.until("node2 to hold every note", timeout: 20, context: { node2.log }) {
            pathsOutsideState(target) == pathsOutsideState(source)
        }

        // SIGTERM to the sender too: clean, and nothing left behind in its PATH.
        let (senderStatus, senderSeconds) = stop(node1, with: SIGTERM)
        XCTAssertEqual(senderStatus, 0, node1.log)
        XCTAssertLessThan(senderSeconds, 5, node1.log)
        XCTAssertEqual(pathsOutsideState(source), Array(expected).sorted())
        XCTAssertEqual(node2.stop(), 0, node2.log)
    }

    func testSigintStopsAnIdleNodeWithExitZeroAndItRestartsAtOnce() throws {
        let cluster = try DaemonCluster(names: ["node1", "node2"], certificates: TestCertificates.shared, in: scratch)
        let root = cluster.member("node1").root
        FileManager.default.createFile(atPath: root + "/hello.txt", contents: Data("hello\n".utf8))
        var node1 = try cluster.start("node1", in: scratch)
        let node2 = try cluster.start("node2", in: scratch)
        DaemonWait.until("hello.txt on node2", timeout: 20, context: { node1.log + node2.log }) {
            FileManager.default.fileExists(atPath: cluster.member("node2").root + "/hello.txt")
        }
        for round in 1...2 {
            let (status, seconds) = stop(node1, with: SIGINT)
            print("SIGINT round \(round): exit \(status.map(String.init) ?? "none") after \(String(format: "%.3f", seconds)) s")
            XCTAssertEqual(status, 0, node1.log)
            XCTAssertLessThan(seconds, 5, node1.log)
            XCTAssertNil(DaemonProbe.status(root), "the control socket must be gone with the daemon")
            XCTAssertEqual(pathsOutsideState(root), ["hello.txt"])
            node1 = try scratch.start(cluster.arguments("node1"), log: "node1-\(round).log")
            DaemonWait.until("the restarted node1 to answer status", timeout: 10, context: { node1.log }) {
                DaemonProbe.status(root) != nil
            }
            XCTAssertTrue(node1.isRunning, node1.log)
        }
        XCTAssertEqual(node1.stop(), 0, node1.log)
        XCTAssertEqual(node2.stop(), 0, node2.log)
    }
}
