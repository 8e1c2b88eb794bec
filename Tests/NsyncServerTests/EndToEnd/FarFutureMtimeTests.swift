import Foundation
import XCTest
@testable import NsyncServer

/// `touch -d 2300-01-01 f` (ext4 and tmpfs keep such times) stopped the
/// daemon that looked at it, and again at every start: the time in
/// nanoseconds overflowed Int64. It now reads as the end of the range
/// (2262-04-11), syncs with that time, and the node goes on.
final class EndToEndFarFutureMtimeTests: ClusterTestCase {
    func testAFileDatedPast2262SyncsAndNoDaemonStops() throws {
        let cluster = try makeCluster()
        try cluster.write(0, "future.txt", "from the 24th century\n")
        var times = [timespec(tv_sec: 10_413_792_000, tv_nsec: 0), timespec(tv_sec: 10_413_792_000, tv_nsec: 0)]
        XCTAssertEqual(utimensat(AT_FDCWD, cluster.path(0, "future.txt"), &times, 0), 0)
        try cluster.write(0, "after.txt", "written after\n")
        for node in [1, 2] {
            try cluster.poll("future.txt on node\(node + 1) with the range's last time", timeout: 20,
                             detail: { cluster.logTail(0) }) {
                cluster.readText(node, "future.txt") == "from the 24th century\n"
                    && (try? FileSystem.status(cluster.path(node, "future.txt")).modificationTime) == .max ? true : nil
            }
        }
        XCTAssertTrue(cluster.members[0].isRunning, "node1 looked at it and runs on:\n\(cluster.logTail(0))")
        try cluster.kill(0, signal: SIGTERM)
        try cluster.restart(0)
        try cluster.write(0, "restarted.txt", "after a start-up scan of it\n")
        try cluster.poll("restarted.txt on node2", timeout: 20, detail: { cluster.logTail(0) }) {
            cluster.readText(1, "restarted.txt") == "after a start-up scan of it\n" ? true : nil
        }
        XCTAssertTrue(cluster.members[0].isRunning)
    }
}
