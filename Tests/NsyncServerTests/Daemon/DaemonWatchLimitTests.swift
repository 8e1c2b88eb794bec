import Foundation
import XCTest
@testable import NsyncServer

/// The inotify watch limit is host-wide (per user), so these tests give the
/// daemon a user namespace of its own whose limit
/// (/proc/sys/user/max_inotify_watches) they set: none at all must fail
/// start-up with the sysctl to raise; too few for the tree must be reported
/// at once (status and log) while the node keeps running on rescans.
final class DaemonWatchLimitTests: XCTestCase {
    private var scratch: DaemonScratch!

    override func setUpWithError() throws {
        scratch = try DaemonScratch(name)
    }

    override func tearDown() {
        scratch?.remove()
    }

    func testNoInotifyWatchForPathFailsStartupNamingTheSysctl() throws {
        let wrapper = DaemonWrapper.inotifyWatches(0)
        try DaemonWrapper.skipUnlessAvailable(wrapper, "a user namespace with its own inotify limit")
        let cluster = try DaemonCluster(names: ["node1", "node2"], certificates: TestCertificates.shared, in: scratch)
        try assertRefusedToStart(in: scratch, cluster.arguments("node1"), wrapper: wrapper,
                                 mentions: [cluster.member("node1").root, "inotify", "fs.inotify.max_user_watches", "sysctl -w"])
        // The refused start released everything: the same node starts now.
        let node = try cluster.start("node1", in: scratch)
        DaemonWait.until("node1 to answer status", timeout: 10, context: { node.log }) {
            DaemonProbe.status(cluster.member("node1").root) != nil
        }
        XCTAssertEqual(node.stop(), 0, node.log)
    }

    func testRunningOutOfWatchesAtStartIsReportedAtOnceAndTheNodeKeepsRunning() throws {
        let wrapper = DaemonWrapper.inotifyWatches(2)
        try DaemonWrapper.skipUnlessAvailable(wrapper, "a user namespace with its own inotify limit")
        let cluster = try DaemonCluster(names: ["node1", "node2"], certificates: TestCertificates.shared, in: scratch)
        let root = cluster.member("node1").root
        for directory in ["a/b/c", "d/e", "f"] { try scratch.makeDirectory("node1/" + directory) }
        let node = try cluster.start("node1", in: scratch, wrapper: wrapper)
        var errors: [String] = []
        // Nothing changes in the tree: the report must not wait for a change.
        DaemonWait.until("the watch limit in status recentErrors", timeout: 10, context: { node.log }) {
            errors = DaemonProbe.status(root)?.recentErrors ?? []
            return errors.contains { $0.contains("inotify watch limit reached") }
        }
        let report = errors.first { $0.contains("inotify watch limit") } ?? ""
        XCTAssertTrue(report.contains("fs.inotify.max_user_watches"), report)
        XCTAssertTrue(node.log.contains("inotify watch limit reached"), node.log)
        XCTAssertTrue(node.isRunning, node.log)
        XCTAssertEqual(node.stop(), 0, node.log)
    }
}
