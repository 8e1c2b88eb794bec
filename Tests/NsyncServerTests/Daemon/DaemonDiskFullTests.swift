import Foundation
import XCTest
@testable import NsyncServer

/// A receiving node whose disk fills up: its PATH is a small tmpfs, mounted
/// in a mount namespace of its own (so the mount ends with the daemon,
/// whatever happens to the test; the test reaches it via /proc/PID/root).
/// When a new version does not fit, the node keeps the old version, says
/// so in `nsyncd status --json` recentErrors and its log, keeps running,
/// and completes the file once space is freed.
final class DaemonDiskFullTests: XCTestCase {
    private var scratch: DaemonScratch!

    override func setUpWithError() throws {
        // A short name: the control socket path through /proc/PID/root must fit sun_path.
        scratch = try DaemonScratch("diskfull")
    }

    override func tearDown() {
        scratch?.remove()
    }

    private func pattern(_ count: Int, seed: UInt64) -> Data {
        var random = LoopTestSupport.SeededRandom(seed: seed)
        var bytes = [UInt8](repeating: 0, count: count)
        for i in stride(from: 0, to: count, by: 8) {
            withUnsafeBytes(of: random.next()) { word in
                for j in 0..<min(8, count - i) { bytes[i + j] = word[j] }
            }
        }
        return Data(bytes)
    }

    private func freeBytes(_ path: String) -> Int {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return -1 }
        return Int(info.f_bavail) * Int(info.f_frsize)
    }

    /// node1, and node2 with its PATH on a tmpfs of `tmpfsBytes` in a mount
    /// namespace of its own, both holding `name` (node1 wrote `contents`).
    private struct TmpfsPair {
        let cluster: DaemonCluster
        let node1: DaemonProcess
        let node2: DaemonProcess
        /// node1's PATH, and node2's as the test sees it (through /proc/PID/root).
        let source: String
        let target: String
        var logs: String { "node1:\n\(node1.log.suffix(4000))\nnode2:\n\(node2.log.suffix(6000))" }
    }

    private func startPair(holding name: String, _ contents: Data, tmpfsBytes: Int = 16 << 20) throws -> TmpfsPair {
        let cluster = try DaemonCluster(names: ["node1", "node2"], certificates: TestCertificates.shared, in: scratch)
        let source = cluster.member("node1").root
        let wrapper = DaemonWrapper.tmpfs(cluster.member("node2").root, bytes: tmpfsBytes)
        try DaemonWrapper.skipUnlessAvailable(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                               #"mount -t tmpfs -o size=1m x "$0""#, try scratch.makeDirectory("probe")],
                                              "mounting a tmpfs in a private mount namespace")
        FileManager.default.createFile(atPath: source + "/" + name, contents: contents)
        let node1 = try cluster.start("node1", in: scratch)
        let node2 = try cluster.start("node2", in: scratch, wrapper: wrapper)
        let pair = TmpfsPair(cluster: cluster, node1: node1, node2: node2, source: source,
                             target: "/proc/\(node2.pid)/root" + cluster.member("node2").root)
        DaemonWait.until("node2 to hold \(name)", timeout: 30, context: { pair.logs }) {
            FileManager.default.contents(atPath: pair.target + "/" + name) == contents
        }
        XCTAssertLessThanOrEqual(freeBytes(pair.target), tmpfsBytes, "node2's PATH is not the tmpfs")
        return pair
    }

    func testANewVersionThatDoesNotFitKeepsTheOldOneReportsTheErrorAndCompletesOnceSpaceIsFreed() throws {
        let seed = LoopTestSupport.seed()
        let old = pattern(256 << 10, seed: seed)
        let pair = try startPair(holding: "data.bin", old)
        let (node1, node2, source, target) = (pair.node1, pair.node2, pair.source, pair.target)
        let logs = { pair.logs }

        // Fill node2's disk, leaving 2 MiB, with a file nsyncd never syncs.
        let filler = target + "/.nsync/filler"
        let fillerSize = freeBytes(target) - (2 << 20)
        XCTAssertGreaterThan(fillerSize, 8 << 20)
        FileManager.default.createFile(atPath: filler, contents: Data(count: fillerSize))
        print("node2's tmpfs: \(freeBytes(target) >> 10) KiB free after a \(fillerSize >> 20) MiB filler")

        // node1 replaces data.bin with 12 MiB, atomically (written outside PATH, renamed in):
        // more than the fetcher buffers per link, so bytes still arrive after the write
        // fails, and a link left paused by them would never fetch again.
        let new = pattern(12 << 20, seed: seed &+ 1)
        let staged = scratch.path + "/data.bin.new"
        FileManager.default.createFile(atPath: staged, contents: new)
        XCTAssertEqual(rename(staged, source + "/data.bin"), 0)

        var errors: [String] = []
        let statusArguments = ["status", target, "--json"]
        DaemonWait.until("node2 to report the full disk in status --json", timeout: 20, context: logs) {
            guard let exit = try? DaemonProcess.runToExit(statusArguments, in: scratch, timeout: 10), exit.status == 0,
                  let status = try? NodeStatus.decode(Data(exit.stdout.utf8)) else { return false }
            errors = status.recentErrors
            return errors.contains { $0.contains("No space left on device") }
        }
        print("node2 recentErrors: \(errors)")
        let report = errors.first { $0.contains("No space left on device") } ?? ""
        XCTAssertTrue(report.contains("data.bin"), "the error names the file: \(report)\n\(logs())")
        XCTAssertTrue(node2.log.contains("No space left on device"), logs())
        XCTAssertTrue(node2.isRunning, logs())
        XCTAssertEqual(FileManager.default.contents(atPath: target + "/data.bin"), old, "node2 must keep the old version")
        let visible = (try? FileManager.default.contentsOfDirectory(atPath: target))?.sorted() ?? []
        XCTAssertEqual(visible, [".nsync", "data.bin"], "nothing partial in node2's PATH")

        // More changes while the disk is full: node2 appends their Raft
        // entries (small) and must neither die nor lose them.
        try scratch.makeDirectory("node1/notes")
        for i in 0..<40 {
            FileManager.default.createFile(atPath: "\(source)/notes/note-\(i).txt", contents: Data("note \(i) \(seed)\n".utf8))
        }
        DaemonWait.until("node2 to apply the notes' entries", timeout: 20, context: logs) {
            guard let status = DaemonProbe.status(target), let leader = DaemonProbe.status(source) else { return false }
            return leader.commitIndex > 0 && status.appliedIndex == leader.commitIndex && status.files >= 42
        }
        XCTAssertTrue(node2.isRunning, "a full disk must not stop the node\n\(logs())")

        // Space comes back: the new version arrives without a restart.
        let freed = Date()
        try FileManager.default.removeItem(atPath: filler)
        DaemonWait.until("node2 to hold the new data.bin and the notes once space is freed", timeout: 30, context: logs) {
            FileManager.default.contents(atPath: target + "/data.bin") == new
                && ((try? FileManager.default.contentsOfDirectory(atPath: target + "/notes"))?.count ?? 0) == 40
        }
        print("node2 completed data.bin \(String(format: "%.2f", Date().timeIntervalSince(freed))) s after space was freed")
        XCTAssertEqual(node2.stop(), 0, logs())
        XCTAssertEqual(node1.stop(), 0, logs())
    }

    /// A file deleted elsewhere is kept a while for a rename's new name; a
    /// fetch that finds the disk short of room gets that room back at once
    /// (not after the 60 s a kept file waits).
    func testKeptDeletedFilesGiveTheirRoomBackWhenAFetchRunsShort() throws {
        let seed = LoopTestSupport.seed()
        let pair = try startPair(holding: "old.bin", pattern(7 << 20, seed: seed))
        let (node1, node2, source, target) = (pair.node1, pair.node2, pair.source, pair.target)
        let logs = { pair.logs }

        // Deleted on node1: node2 keeps its 7 MiB under .nsync/tmp.
        try FileManager.default.removeItem(atPath: source + "/old.bin")
        DaemonWait.until("node2 to delete old.bin", timeout: 20, context: logs) {
            !FileManager.default.fileExists(atPath: target + "/old.bin")
        }
        let kept = (try? FileManager.default.contentsOfDirectory(atPath: target + "/.nsync/tmp"))?.filter { $0.hasPrefix("kept-") } ?? []
        XCTAssertEqual(kept.count, 1, "old.bin's bytes are kept for a while: \(kept)")
        print("node2's tmpfs: \(freeBytes(target) >> 10) KiB free with old.bin kept")

        // A new 9 MiB file fits only once the kept bytes are gone.
        let new = pattern(9 << 20, seed: seed &+ 1)
        let staged = scratch.path + "/new.bin"
        FileManager.default.createFile(atPath: staged, contents: new)
        XCTAssertEqual(rename(staged, source + "/new.bin"), 0)
        let started = Date()
        DaemonWait.until("node2 to hold new.bin (a kept file waits 60 s by itself)", timeout: 20, context: logs) {
            FileManager.default.contents(atPath: target + "/new.bin") == new
        }
        print("node2 got new.bin \(String(format: "%.2f", Date().timeIntervalSince(started))) s after it was written")
        XCTAssertTrue(node2.isRunning, logs())
        XCTAssertEqual(node2.stop(), 0, logs())
        XCTAssertEqual(node1.stop(), 0, logs())
    }

    /// A copy made on another node of a file this node holds is copied from
    /// the local bytes, and like a fetch it must leave the raft log's reserve
    /// free: on a disk without that room it waits, and completes once space
    /// is freed.
    func testALocalCopyLeavesTheRaftLogReserveFree() throws {
        let seed = LoopTestSupport.seed()
        let tmpfsBytes = 16 << 20
        let big = pattern(6 << 20, seed: seed)
        let pair = try startPair(holding: "big.bin", big, tmpfsBytes: tmpfsBytes)
        let (node1, node2, source, target) = (pair.node1, pair.node2, pair.source, pair.target)
        let logs = { pair.logs }
        // Room for the 6 MiB copy, not for the reserve beside it.
        let filler = target + "/.nsync/filler"
        FileManager.default.createFile(atPath: filler, contents: Data(count: freeBytes(target) - (6 << 20) - (400 << 10)))
        let reserve = Int(Fetcher.diskReserve(total: UInt64(tmpfsBytes)))

        let staged = scratch.path + "/copy.bin"
        FileManager.default.createFile(atPath: staged, contents: big)
        XCTAssertEqual(rename(staged, source + "/copy.bin"), 0)
        var lowest = Int.max
        var errors: [String] = []
        let statusArguments = ["status", target, "--json"]
        DaemonWait.until("node2 to report the full disk", timeout: 20, context: logs) {
            lowest = min(lowest, freeBytes(target))
            guard let exit = try? DaemonProcess.runToExit(statusArguments, in: scratch, timeout: 10), exit.status == 0,
                  let status = try? NodeStatus.decode(Data(exit.stdout.utf8)) else { return false }
            errors = status.recentErrors
            return errors.contains { $0.contains("copy.bin") && $0.contains("kept free for the raft log") }
        }
        print("node2: lowest free \(lowest >> 10) KiB (reserve \(reserve >> 10) KiB); \(errors)")
        XCTAssertGreaterThanOrEqual(lowest, reserve, "the copy ate into the raft log's reserve\n" + logs())
        XCTAssertFalse(FileManager.default.fileExists(atPath: target + "/copy.bin"))

        try FileManager.default.removeItem(atPath: filler)
        DaemonWait.until("node2 to hold copy.bin once space is freed", timeout: 30, context: logs) {
            FileManager.default.contents(atPath: target + "/copy.bin") == big
        }
        XCTAssertTrue(node2.isRunning, logs())
        XCTAssertEqual(node2.stop(), 0, logs())
        XCTAssertEqual(node1.stop(), 0, logs())
    }
}
