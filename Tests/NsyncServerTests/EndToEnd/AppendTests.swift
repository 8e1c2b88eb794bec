import Foundation
import XCTest
@testable import NsyncServer

/// A file that grows by appending (a log) moves only its new bytes: a node
/// starts the new version from the one it holds, once a holder has checked
/// that its first bytes are the same (`FetchRequest.prefixDigest`). A file
/// that grows any other way is fetched whole, and either way the index's
/// SHA-256 checks the result.
final class EndToEndAppendTests: ClusterTestCase {
    func testAFileAppendedToMovesOnlyItsNewBytesAndOneRewrittenLargerMovesWhole() throws {
        let cluster = try makeCluster(label: "append")
        let start = Self.bytes(count: 4 << 20, seed: 1)
        try cluster.write(0, "logs/app.log", start)
        try cluster.waitUntilConverged()
        let received = { (node: Int) throws -> UInt64 in try cluster.status(node).bytesReceived ?? 0 }

        // Appended to: 100 KiB more.
        let before = try [1, 2].map(received)
        let tail = Self.bytes(count: 100 << 10, seed: 2)
        try Self.append(tail, to: cluster.path(0, "logs/app.log"))
        try cluster.waitUntilConverged()
        for node in 0..<cluster.count { XCTAssertEqual(cluster.read(node, "logs/app.log"), start + tail, "node\(node + 1)") }
        for (i, node) in [1, 2].enumerated() {
            let moved = try received(node) - before[i]
            XCTAssertGreaterThanOrEqual(moved, UInt64(tail.count), "node\(node + 1) received the new bytes")
            XCTAssertLessThan(moved, 1 << 20, "node\(node + 1) received \(moved) bytes for a 100 KiB append to a 4 MiB file")
        }

        // Rewritten with other bytes, and larger: the first bytes differ.
        let after = try [1, 2].map(received)
        let other = Self.bytes(count: 5 << 20, seed: 3)
        try cluster.write(0, "logs/app.log", other)
        try cluster.waitUntilConverged()
        for node in 0..<cluster.count { XCTAssertEqual(cluster.read(node, "logs/app.log"), other, "node\(node + 1)") }
        for (i, node) in [1, 2].enumerated() {
            XCTAssertGreaterThanOrEqual(try received(node) - after[i], UInt64(other.count), "node\(node + 1) fetched it whole")
        }
    }

    private static func bytes(count: Int, seed: UInt64) -> [UInt8] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
    }

    private static func append(_ bytes: [UInt8], to path: String) throws {
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        XCTAssertEqual(bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }, bytes.count)
    }
}
