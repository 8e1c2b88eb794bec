import Foundation
import XCTest
@testable import NsyncServer

/// Changes inotify never reports: a file written through one of its hard
/// links changes under every name, but the event names only that one; a
/// write through a shared memory mapping makes no event at all. The node
/// finds them by scanning the tree: soon after a hard-linked file changed,
/// and every `--rescan-interval` seconds.
final class EndToEndUnreportedChangeTests: ClusterTestCase {
    /// Before: node2 and node3 kept the old `elsewhere/b.txt` until node1
    /// restarted, and `nsyncd wait` said every node was in sync. Now
    /// node1's `wait`, run once node2 has the new `a.txt`, returns only
    /// once every node holds the new `elsewhere/b.txt` too.
    func testAFileWrittenThroughOneHardLinkSyncsUnderItsOtherNames() throws {
        let cluster = try makeCluster(label: "hardlink")
        try cluster.write(0, "a.txt", "first\n")
        try cluster.makeDirectory(0, "elsewhere")
        XCTAssertEqual(link(cluster.path(0, "a.txt"), cluster.path(0, "elsewhere/b.txt")), 0, "link: errno \(errno)")
        try cluster.waitUntilConverged()
        XCTAssertEqual(cluster.readText(1, "elsewhere/b.txt"), "first\n")

        try Self.append("second\n", to: cluster.path(0, "a.txt"))
        try eventually(cluster, "a.txt with the appended line on node2") {
            cluster.readText(1, "a.txt") == "first\nsecond\n"
        }
        let result = try cluster.runCommand(["wait", cluster.path(0), "--timeout", "20s"], timeout: 30)
        XCTAssertEqual(result.status, 0, result.output)
        for node in 1..<cluster.count {
            XCTAssertEqual(cluster.readText(node, "elsewhere/b.txt"), "first\nsecond\n", "node\(node + 1) once node1's wait returned")
        }
        let tree = try cluster.waitUntilConverged()
        XCTAssertEqual(tree.paths, ["a.txt", "elsewhere", "elsewhere/b.txt"])
        for node in 0..<cluster.count { XCTAssertEqual(cluster.readText(node, "a.txt"), "first\nsecond\n", "node\(node + 1)") }
    }

    /// A writer keeps `a.txt` open and writes a line every 100 ms: its
    /// other name is not announced half-written by the rescans that its
    /// looks ask for (before: node2 saw a new `b.txt` every 2 s); node2
    /// sees the first version, then the last.
    func testTheOtherNameOfAFileBeingWrittenWaitsForTheWriter() throws {
        let cluster = try makeCluster(label: "hardlinkbusy")
        try cluster.write(0, "a.txt", "start\n")
        XCTAssertEqual(link(cluster.path(0, "a.txt"), cluster.path(0, "b.txt")), 0, "link: errno \(errno)")
        try cluster.waitUntilConverged()

        let fd = open(cluster.path(0, "a.txt"), O_WRONLY | O_APPEND | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var written = "start\n"
        var seen: Set<String> = []
        for line in 0..<50 {
            let text = "line \(line)\n"
            written += text
            XCTAssertEqual(Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }, text.utf8.count)
            seen.insert(cluster.readText(1, "b.txt") ?? "(none)")
            usleep(100_000)
        }
        close(fd)
        try eventually(cluster, "b.txt as written on node2") {
            seen.insert(cluster.readText(1, "b.txt") ?? "(none)")
            return cluster.readText(1, "b.txt") == written
        }
        XCTAssertEqual(seen, ["start\n", written], "node2's b.txt was announced half-written")
        try cluster.waitUntilConverged()
    }

    /// With no quorum, node1's change cannot be announced: each look sees
    /// the same stat again, and must not ask for another rescan (before:
    /// one every 2 s, each hashing the file again, for as long as it lasted).
    func testAHardLinkedFileThatCannotBeAnnouncedDoesNotRescanAgainAndAgain() throws {
        let cluster = try makeCluster(label: "hardlinknoquorum")
        try cluster.write(0, "a.txt", "first\n")
        XCTAssertEqual(link(cluster.path(0, "a.txt"), cluster.path(0, "b.txt")), 0, "link: errno \(errno)")
        try cluster.waitUntilConverged()
        try cluster.kill(1)
        try cluster.kill(2)
        try Self.append("second\n", to: cluster.path(0, "a.txt"))
        let rescans = { cluster.log(0).components(separatedBy: "scan done (a file with hard links changed)").count - 1 }
        try eventually(cluster, "node1's first rescan for the hard link") { rescans() >= 1 }
        Thread.sleep(forTimeInterval: 7)
        XCTAssertLessThanOrEqual(rescans(), 2, "rescans while nothing changed")
    }

    /// The mapping is made and its descriptor closed (the close is the last
    /// event) and the cluster settles; only then is the file written
    /// through it. Without the periodic rescan no node ever learned of it.
    func testAPeriodicRescanFindsAWriteThroughAMemoryMapping() throws {
        let cluster = try makeCluster(extraArguments: ["--rescan-interval", "1"], label: "rescan")
        let size = 8192
        try cluster.write(0, "db.bin", [UInt8](repeating: 0, count: size))
        try cluster.waitUntilConverged()

        let fd = open(cluster.path(0, "db.bin"), O_RDWR | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(fd, 0, "open: errno \(errno)")
        let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        close(fd)
        guard let mapped, mapped != UnsafeMutableRawPointer(bitPattern: -1) else {
            return XCTFail("mmap: errno \(errno)")
        }
        defer { munmap(mapped, size) }
        try cluster.waitUntilConverged()

        let written = Array("written through a mapping".utf8)
        written.withUnsafeBytes { mapped.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        XCTAssertEqual(msync(mapped, size, MS_SYNC), 0, "msync: errno \(errno)")
        let expected = written + [UInt8](repeating: 0, count: size - written.count)
        try eventually(cluster, "db.bin as written through the mapping on node2 and node3") {
            [1, 2].allSatisfy { cluster.read($0, "db.bin") == expected }
        }
        try cluster.waitUntilConverged()
        // Logged at info only when a periodic scan finds something.
        XCTAssertTrue(cluster.log(0).split(separator: "\n").contains {
            $0.contains(" info ") && $0.contains("to look at=1") && $0.contains("scan done (periodic, every 1 s)")
        }, "the periodic scan found it")
    }

    private static func append(_ text: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        XCTAssertEqual(bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }, bytes.count)
    }
}
