import Foundation
import XCTest
@testable import NsyncServer

/// PATH, or its `.nsync`, taken away under a running node: renamed, removed,
/// unmounted. Every file then looks deleted to that node; announcing it
/// would delete them on every node. The node must stop, say why and exit
/// non-zero, and the other nodes keep their files.
final class DaemonStateVanishedTests: XCTestCase {
    private var scratch: DaemonScratch!

    override func setUpWithError() throws {
        scratch = try DaemonScratch("vanish")
    }

    override func tearDown() {
        scratch?.remove()
    }

    private var names = (0..<5).map { "docs/file-\($0).txt" }
    private var cluster: DaemonCluster!

    /// node1 and node2, both holding `names`.
    private func startPair() throws -> (node1: DaemonProcess, node2: DaemonProcess, source: String, target: String) {
        let cluster = try DaemonCluster(names: ["node1", "node2"], certificates: TestCertificates.shared, in: scratch)
        self.cluster = cluster
        let (source, target) = (cluster.member("node1").root, cluster.member("node2").root)
        for folder in Set(names.map { String($0.split(separator: "/")[0]) }) {
            XCTAssertEqual(mkdir(source + "/" + folder, 0o755), 0)
        }
        for name in names { FileManager.default.createFile(atPath: source + "/" + name, contents: Data(name.utf8)) }
        let node1 = try cluster.start("node1", in: scratch)
        let node2 = try cluster.start("node2", in: scratch)
        DaemonWait.until("node2 to hold every file", timeout: 30, context: { node2.log.suffix(4000).description }) {
            names.allSatisfy { FileManager.default.contents(atPath: target + "/" + $0) == Data($0.utf8) }
        }
        return (node1, node2, source, target)
    }

    private func assertStoppedSaying(_ node: DaemonProcess, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let status = node.waitForExit(timeout: 10)
        XCTAssertEqual(status, 1, "exits with a failure status\n\(node.log.suffix(3000))", file: file, line: line)
        XCTAssertTrue(node.log.contains("or its .nsync state directory was removed, moved, replaced or unmounted"),
                      "\(what): says why\n\(node.log.suffix(3000))", file: file, line: line)
    }

    /// What node1 still holds of `names`, after giving a deletion the time to arrive.
    private func survivors(_ source: String, on node1: DaemonProcess) -> [String] {
        usleep(1_500_000)
        XCTAssertTrue(node1.isRunning, node1.log.suffix(3000).description)
        return names.filter { FileManager.default.fileExists(atPath: source + "/" + $0) }
    }

    func testPathRenamedAwayStopsTheNodeInsteadOfDeletingEverywhere() throws {
        let (node1, node2, source, target) = try startPair()
        XCTAssertEqual(rename(target, target + ".moved"), 0)
        // A change inside the moved tree: its watches still report it, and
        // every look at PATH now finds nothing.
        XCTAssertEqual(unlink(target + ".moved/" + names[0]), 0)
        assertStoppedSaying(node2, "PATH renamed")
        XCTAssertEqual(survivors(source, on: node1), names, "node1 lost files that vanished with node2's PATH")
        XCTAssertEqual(node1.stop(), 0)
    }

    /// `rm -rf PATH` goes in readdir order: the folders before `.nsync`
    /// go first. Their removals must wait for the burst to end, by which
    /// time `.nsync` is gone and the node stops (old code: the 300 removals
    /// went out at once, and node1 lost every file).
    func testRemovalsMadeJustBeforeTheStateDirectoryGoesAreNotAnnounced() throws {
        // The first folder alone makes a burst (64 removals).
        names = (0..<6).flatMap { folder in (0..<(folder == 0 ? 100 : 40)).map { "folder-\(folder)/file-\($0).txt" } }
        let (node1, node2, source, target) = try startPair()
        for folder in 0..<6 { try FileManager.default.removeItem(atPath: target + "/folder-\(folder)") }
        // Longer than the look and proposal of a removal take, well within the
        // quiet second a burst waits for.
        usleep(300_000)
        try FileManager.default.removeItem(atPath: target + "/.nsync")
        assertStoppedSaying(node2, "rm -rf reaching .nsync")
        let kept = survivors(source, on: node1)
        XCTAssertEqual(kept.count, names.count, "node1 lost \(names.count - kept.count) files removed on node2 before its .nsync")
        XCTAssertEqual(node1.stop(), 0)
    }

    /// The lock file losing its name is the first sign of `.nsync` being
    /// emptied; the directory itself may then survive (a file the node
    /// writes in it meanwhile makes its removal fail).
    /// It also forgets its manifest, which `rm -rf` would have removed:
    /// started again, it rejoins with what PATH holds instead of announcing
    /// the files removed meanwhile.
    func testLockFileRemovedStopsTheNodeAndARestartDeletesNothing() throws {
        let (node1, node2, source, target) = try startPair()
        DaemonWait.until("node2's manifest to record \(names[0])", timeout: 10) {
            DaemonProbe.manifestVersion(root: target, path: names[0]) != nil
        }
        XCTAssertEqual(unlink(target + "/.nsync/lock"), 0)
        XCTAssertEqual(unlink(target + "/" + names[0]), 0)
        assertStoppedSaying(node2, "lock file removed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: target + "/.nsync/manifest"), "the manifest is dropped")
        XCTAssertEqual(survivors(source, on: node1), names)

        let again = try cluster.start("node2", in: scratch)
        DaemonWait.until("node2 to fetch \(names[0]) back", timeout: 30, context: { again.log.suffix(4000).description }) {
            FileManager.default.contents(atPath: target + "/" + names[0]) == Data(names[0].utf8)
        }
        XCTAssertEqual(survivors(source, on: node1), names, "the restart announced the removal after all")
        XCTAssertEqual(again.stop(), 0)
        XCTAssertEqual(node1.stop(), 0)
    }

    func testStateDirectoryRemovedStopsTheNodeBeforeLaterRemovalsAreAnnounced() throws {
        let (node1, node2, source, target) = try startPair()
        try FileManager.default.removeItem(atPath: target + "/.nsync")
        assertStoppedSaying(node2, ".nsync removed")
        try FileManager.default.removeItem(atPath: target + "/docs")
        XCTAssertEqual(survivors(source, on: node1), names)
        XCTAssertEqual(node1.stop(), 0)
    }
}
