import Foundation
import XCTest
@testable import NsyncServer

/// The control socket PATH/.nsync/control.sock that `nsyncd status` and
/// `nsyncd wait` use: a PATH too deep for a Unix socket address (107 bytes)
/// still runs and answers, and a failure to create the socket is a one-line
/// start-up error.
final class DaemonControlSocketTests: XCTestCase {
    private var scratch: DaemonScratch!

    override func setUpWithError() throws {
        scratch = try DaemonScratch(name)
    }

    override func tearDown() {
        scratch?.remove()
    }

    func testADeepPathRunsAndAnswersStatusAndWait() throws {
        let deep = "deep/" + String(repeating: "d", count: 60) + "/" + String(repeating: "e", count: 60)
        let cluster = try DaemonCluster(names: ["node1", "node2"], certificates: TestCertificates.shared, in: scratch)
        let root = cluster.member("node1").root + "/" + deep
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        XCTAssertGreaterThan((root + "/.nsync/control.sock").utf8.count, 107)
        FileManager.default.createFile(atPath: root + "/hello.txt", contents: Data("hello\n".utf8))
        var arguments = cluster.arguments("node1")
        arguments[0] = root
        let node1 = try scratch.start(arguments, log: "node1.log")
        let node2 = try cluster.start("node2", in: scratch)
        DaemonWait.until("hello.txt on node2", timeout: 20, context: { node1.log + node2.log }) {
            FileManager.default.fileExists(atPath: cluster.member("node2").root + "/hello.txt")
        }
        let status = try DaemonProcess.runToExit(["status", root, "--json"], in: scratch, timeout: 10)
        XCTAssertEqual(status.status, 0, status.stderr)
        XCTAssertEqual(try NodeStatus.decode(Data(status.stdout.utf8)).name, "node1")
        let wait = try DaemonProcess.runToExit(["wait", root, "--timeout", "10s"], in: scratch, timeout: 20)
        XCTAssertEqual(wait.status, 0, wait.stderr)
        XCTAssertEqual(node1.stop(), 0, node1.log)
        XCTAssertEqual(node2.stop(), 0, node2.log)
        let after = try DaemonProcess.runToExit(["status", root], in: scratch, timeout: 10)
        XCTAssertNotEqual(after.status, 0)
        XCTAssertTrue(after.stderr.contains("no nsyncd is running on \(root)"), after.stderr)
    }

    func testAControlSocketPathThatCannotBeFreedFailsStartupWithOneLine() throws {
        let cluster = try DaemonCluster(names: ["node1", "node2"], certificates: TestCertificates.shared, in: scratch)
        let socket = cluster.member("node1").root + "/.nsync/control.sock"
        try FileManager.default.createDirectory(atPath: socket + "/in-the-way", withIntermediateDirectories: true)
        try assertRefusedToStart(in: scratch, cluster.arguments("node1"), mentions: [socket, "control socket", "remove what is at that path"])
    }
}
