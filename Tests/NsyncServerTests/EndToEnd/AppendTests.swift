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
        let start = TestBytes.pseudoRandom(count: 4 << 20, seed: 1)
        try cluster.write(0, "logs/app.log", start)
        try cluster.waitUntilConverged()
        let received = { (node: Int) throws -> UInt64 in try cluster.status(node).bytesReceived ?? 0 }

        // Appended to: 100 KiB more.
        let before = try [1, 2].map(received)
        let tail = TestBytes.pseudoRandom(count: 100 << 10, seed: 2)
        try TestBytes.append(tail, to: cluster.path(0, "logs/app.log"))
        try cluster.waitUntilConverged()
        for node in 0..<cluster.count { XCTAssertEqual(cluster.read(node, "logs/app.log"), start + tail, "node\(node + 1)") }
        for (i, node) in [1, 2].enumerated() {
            let moved = try received(node) - before[i]
            XCTAssertGreaterThanOrEqual(moved, UInt64(tail.count), "node\(node + 1) received the new bytes")
            XCTAssertLessThan(moved, 1 << 20, "node\(node + 1) received \(moved) bytes for a 100 KiB append to a 4 MiB file")
        }

        // Rewritten with other bytes, and larger: the first bytes differ.
        let after = try [1, 2].map(received)
        let other = TestBytes.pseudoRandom(count: 5 << 20, seed: 3)
        try cluster.write(0, "logs/app.log", other)
        try cluster.waitUntilConverged()
        for node in 0..<cluster.count { XCTAssertEqual(cluster.read(node, "logs/app.log"), other, "node\(node + 1)") }
        for (i, node) in [1, 2].enumerated() {
            XCTAssertGreaterThanOrEqual(try received(node) - after[i], UInt64(other.count), "node\(node + 1) fetched it whole")
        }
    }
}
