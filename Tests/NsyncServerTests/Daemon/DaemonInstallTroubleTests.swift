import Foundation
import XCTest
@testable import NsyncServer

/// A file that cannot be installed on a node (here: its directory is a
/// read-only mount there; in life, a directory owned by another user) is
/// retried, every second at first, then every 15 s, from the bytes it
/// fetched and verified once (not fetched again each time). It must be
/// logged once, not once a second, and listed by `nsyncd status` with the
/// reason, while everything else syncs.
final class DaemonInstallTroubleTests: XCTestCase {
    private var scratch: DaemonScratch!

    override func setUpWithError() throws {
        scratch = try DaemonScratch("trouble")
    }

    override func tearDown() {
        scratch?.remove()
    }

    func testAFileThatCannotBeInstalledIsLoggedOnceAndListedByStatus() throws {
        let cluster = try DaemonCluster(names: ["node1", "node2"], certificates: TestCertificates.shared, in: scratch)
        let source = cluster.member("node1").root
        let target = cluster.member("node2").root
        // Both nodes start with the directory (so no install of it is needed on node2).
        for root in [source, target] { XCTAssertEqual(mkdir(root + "/locked", 0o755), 0) }
        let wrapper = DaemonWrapper.readOnly(target + "/locked")
        try DaemonWrapper.skipUnlessAvailable(DaemonWrapper.readOnly(try scratch.makeDirectory("probe")),
                                              "a read-only bind mount in a private mount namespace")
        let node1 = try cluster.start("node1", in: scratch)
        let node2 = try cluster.start("node2", in: scratch, wrapper: wrapper, extra: ["--log-level", "debug"])
        let logs = { "node1:\n\(node1.log.suffix(3000))\nnode2:\n\(node2.log.suffix(6000))" }

        let firstWrite = Date()
        // Not zeros: those would come as `.zeros`, not counted as received bytes.
        FileManager.default.createFile(atPath: source + "/locked/x.txt", contents: Data(TestBytes.pseudoRandom(count: 1 << 20, seed: 71)))
        var listed: NodeStatus.Unavailable?
        DaemonWait.until("node2 to list locked/x.txt as unavailable", timeout: 20, context: logs) {
            listed = DaemonProbe.status(target)?.unavailable?.first { $0.path == "locked/x.txt" }
            return listed != nil
        }
        XCTAssertTrue(listed?.reason.contains("cannot install it here") ?? false, "\(String(describing: listed))")
        // Everything else still syncs.
        FileManager.default.createFile(atPath: source + "/free.txt", contents: Data("lands\n".utf8))
        DaemonWait.until("node2 to hold free.txt", timeout: 20, context: logs) {
            FileManager.default.contents(atPath: target + "/free.txt") == Data("lands\n".utf8)
        }
        // Several retries later, still one line about it at info level.
        let start = Date()
        DaemonWait.until("node2 to retry a few times", timeout: 20, context: logs) {
            Date().timeIntervalSince(start) > 4
        }
        let lines = node2.log.split(separator: "\n").filter { $0.contains("cannot install locked/x.txt yet") }
        XCTAssertEqual(lines.filter { !$0.contains(" debug ") }.count, 1, "logged once:\n\(lines.joined(separator: "\n"))")
        // Retried from the bytes fetched once: over 12 s of retries, the
        // file data received is that one copy (and free.txt), where each
        // retry used to fetch the whole file again.
        DaemonWait.until("12 s of failures", timeout: 20, context: logs) { Date().timeIntervalSince(firstWrite) > 12 }
        let received = DaemonProbe.status(target)?.bytesReceived ?? 0
        XCTAssertLessThan(received, 2 << 20, "received \(received) bytes for one 1 MiB file it cannot install\n\(logs())")
        XCTAssertGreaterThanOrEqual(received, 1 << 20, "the file was fetched once")
        // And, failing for over 10 s, it is retried every 15 s: at most one
        // attempt in the next 8 s, where there was one a second.
        let attempts = { node2.log.components(separatedBy: "cannot install locked/x.txt yet").count - 1 }
        let attemptsBefore = attempts()
        XCTAssertGreaterThan(attemptsBefore, 3, "retried every second at first\n\(logs())")
        let windowStart = Date()
        DaemonWait.until("an 8 s window", timeout: 20, context: logs) { Date().timeIntervalSince(windowStart) > 8 }
        XCTAssertLessThanOrEqual(attempts() - attemptsBefore, 1, "attempts in 8 s after 12 s of failures\n\(logs())")
        XCTAssertNotNil(DaemonProbe.status(target)?.unavailable?.first { $0.path == "locked/x.txt" }, "still listed")
        XCTAssertTrue(node2.isRunning, logs())
        XCTAssertEqual(node2.stop(), 0, logs())
        XCTAssertEqual(node1.stop(), 0, logs())
    }
}
