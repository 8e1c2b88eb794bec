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
    /// restarted, and `nsyncd wait` said every node was in sync.
    func testAFileWrittenThroughOneHardLinkSyncsUnderItsOtherNames() throws {
        let cluster = try makeCluster(label: "hardlink")
        try cluster.write(0, "a.txt", "first\n")
        try cluster.makeDirectory(0, "elsewhere")
        XCTAssertEqual(link(cluster.path(0, "a.txt"), cluster.path(0, "elsewhere/b.txt")), 0, "link: errno \(errno)")
        try cluster.waitUntilConverged()
        XCTAssertEqual(cluster.readText(1, "elsewhere/b.txt"), "first\n")

        try Self.append("second\n", to: cluster.path(0, "a.txt"))
        try eventually(cluster, "elsewhere/b.txt with the appended line on node2 and node3") {
            [1, 2].allSatisfy { cluster.readText($0, "elsewhere/b.txt") == "first\nsecond\n" }
        }
        let tree = try cluster.waitUntilConverged()
        XCTAssertEqual(tree.paths, ["a.txt", "elsewhere", "elsewhere/b.txt"])
        for node in 0..<cluster.count { XCTAssertEqual(cluster.readText(node, "a.txt"), "first\nsecond\n", "node\(node + 1)") }
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
        XCTAssertTrue(cluster.log(0).contains("scan done (periodic, every 1 s)"), "the periodic scan found it")
    }

    private static func append(_ text: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        XCTAssertEqual(bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }, bytes.count)
    }
}
