import Foundation
import XCTest
@testable import NsyncServer

/// A setuid file on a receiving node still
/// takes updates from elsewhere; what `nsyncd status` lists as not synced
/// stays while it is there and goes when it goes; a socket or FIFO made and
/// removed again and again is not logged every time.
final class EndToEndModeAndNotSyncedTests: ClusterTestCase {
    /// The file is setuid on node2 only (its owner's chmod u+s there, or an
    /// install by an nsyncd from before the mask): an edit on node1 must
    /// still reach node2, not be fetched and refused (`.localChanged`) again
    /// and again.
    func testAnEditReachesANodeWhereTheFileIsSetuid() throws {
        let cluster = try makeCluster(label: "setuid-update")
        try cluster.waitUntilConverged()
        try cluster.write(0, "bin/tool", "#!/bin/sh\necho one\n", mode: 0o755)
        try cluster.poll("bin/tool on node2", timeout: 20) {
            cluster.readText(1, "bin/tool") == "#!/bin/sh\necho one\n" ? true : nil
        }
        _ = try cluster.runCommand(["wait", cluster.path(1), "--timeout", "20s"], timeout: 25)
        XCTAssertEqual(chmod(cluster.path(1, "bin/tool"), 0o4755), 0)
        usleep(500_000)  // node2 looks at it (IN_ATTRIB): nothing to announce

        try cluster.write(0, "bin/tool", "#!/bin/sh\necho two, longer\n", mode: 0o755)
        try cluster.poll("the edit on node2", timeout: 20, detail: { ((try? cluster.status(1).rendered()) ?? "") + "\n" + cluster.logTail(1) }) {
            cluster.readText(1, "bin/tool") == "#!/bin/sh\necho two, longer\n" ? true : nil
        }
    }

    /// A directory the daemon cannot list (chmod 700 by another user) is
    /// listed by status as a scan finds it, and stays listed: the scan also
    /// looks at it (the manifest knows it, the walk did not see it), and
    /// that look must not take it off the list. Opened again, it is listed
    /// and leaves the list.
    func testAnUnreadableDirectoryStaysListedAfterTheScan() throws {
        let cluster = try makeCluster(label: "unreadable-listed", unprivileged: true)
        try cluster.waitUntilConverged()
        try cluster.makeDirectory(0, "private", mode: 0o755)
        try cluster.write(0, "private/secret.txt", "secret\n")
        try cluster.poll("private/secret.txt on node2", timeout: 20) {
            cluster.readText(1, "private/secret.txt") == "secret\n" ? true : nil
        }
        // Root's, and now closed to the daemon's user.
        XCTAssertEqual(chmod(cluster.path(0, "private"), 0o700), 0)
        usleep(500_000)
        try cluster.kill(0, signal: SIGTERM)
        try cluster.restart(0)
        try cluster.poll("node1's start-up scan done", timeout: 30) { () -> Bool? in
            guard let status = try? cluster.status(0), status.scan == nil else { return nil }
            return cluster.log(0).components(separatedBy: "scan done").count >= 3 ? true : nil
        }
        _ = try cluster.runCommand(["wait", cluster.path(0), "--timeout", "20s"], timeout: 25)
        XCTAssertTrue(cluster.log(0).contains("not syncing private: skipped, cannot read it"), cluster.logTail(0))
        for sample in 0..<4 {
            let status = try cluster.status(0)
            XCTAssertEqual(status.notSyncedCount, 1, "sample \(sample): \(status.rendered())")
            usleep(300_000)
        }

        // Written while the daemon could not list it, then opened again: the
        // chmod's look lists it at once (not at the next hourly scan).
        try cluster.write(0, "private/added.txt", "added while closed\n")
        XCTAssertEqual(chmod(cluster.path(0, "private"), 0o755), 0)
        try cluster.poll("private/added.txt on node2", timeout: 20, detail: { cluster.logTail(0) }) {
            cluster.readText(1, "private/added.txt") == "added while closed\n" ? true : nil
        }
        try cluster.poll("node1's list without private", timeout: 10) {
            try cluster.status(0).notSyncedCount == nil ? true : nil
        }
        XCTAssertEqual(cluster.readText(1, "private/secret.txt"), "secret\n", "nothing was taken for deleted")
    }

    /// A name that is not UTF-8 and matches an ignore rule (the default
    /// `*~`: an editor's backup of a Latin-1 name) is not reported by the
    /// watcher, coming or going. A scan must not list it either, or the list
    /// keeps it after it is gone, until the next full scan (an hour).
    func testAnIgnoredBadNameFoundByTheScanIsNotListedForever() throws {
        let cluster = try makeCluster(label: "ignored-badname")
        try cluster.waitUntilConverged()
        try cluster.kill(0, signal: SIGTERM)
        XCTAssertTrue(createFile(rawPath: cluster.path(0, "notes"), suffix: [0xe9, UInt8(ascii: "~")]))
        try cluster.restart(0)
        try cluster.poll("node1 up", timeout: 20) { (try? cluster.status(0)) != nil ? true : nil }
        _ = try cluster.runCommand(["wait", cluster.path(0), "--timeout", "20s"], timeout: 25)
        var bad = Array(cluster.path(0, "notes").utf8) + [0xe9, UInt8(ascii: "~"), 0]
        XCTAssertEqual(bad.withUnsafeMutableBufferPointer {
            $0.baseAddress!.withMemoryRebound(to: CChar.self, capacity: $0.count) { unlink($0) }
        }, 0)
        try cluster.poll("node1's status without the deleted file", timeout: 10,
                         detail: { (try? cluster.status(0).rendered()) ?? "" }) {
            try cluster.status(0).notSyncedCount == nil ? true : nil
        }
    }

    /// A program that makes its socket (here a FIFO) at each run and removes
    /// it at exit: one line in the log at info, not one per run.
    func testAFIFOMadeAndRemovedAgainAndAgainIsNotLoggedEachTime() throws {
        let cluster = try makeCluster(label: "fifo-loop")
        try cluster.waitUntilConverged()
        for _ in 0..<10 {
            XCTAssertEqual(mkfifo(cluster.path(0, "app.sock"), 0o600), 0)
            usleep(250_000)
            XCTAssertEqual(unlink(cluster.path(0, "app.sock")), 0)
            usleep(100_000)
        }
        try cluster.write(0, "marker.txt", "after\n")
        try cluster.poll("marker.txt on node2", timeout: 20) { cluster.readText(1, "marker.txt") == "after\n" ? true : nil }
        // The daemons log at debug here: the repeats are there, below info.
        let lines = cluster.log(0).split(separator: "\n").filter { $0.contains("not syncing app.sock") }
        XCTAssertGreaterThanOrEqual(lines.count, 10, "each arrival noted")
        let info = lines.filter { $0.contains(" info ") }
        XCTAssertEqual(info.count, 1, "logged at info \(info.count) times:\n\(info.joined(separator: "\n"))")
    }
}
