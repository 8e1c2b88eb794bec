import Foundation
import XCTest
@testable import NsyncServer

/// Large files are offered while their origin hashes them: the other nodes
/// copy them at once (as version 0) and keep the copy only if the SHA-256
/// that commits matches. Real daemons, real TLS, loopback.
final class EndToEndOfferTests: ClusterTestCase {
    /// 96 MiB of `random`'s bytes, each MiB stamped with its offset; returns the SHA-256 in hex.
    private func writeLargeFile(_ cluster: TestCluster, _ relative: String, size: Int,
                                random: inout ClusterRandom) throws -> String {
        let block = random.bytes(1 << 20)
        let hasher = SHA256()
        try cluster.write(0, relative, size: size) { offset, count in
            var piece = Array(block[0..<count])
            withUnsafeBytes(of: UInt64(offset).bigEndian) { piece.replaceSubrange(0..<8, with: $0) }
            hasher.update(piece)
            return piece
        }
        return SHA256.hex(hasher.finalize())
    }

    private func copiedEarly(_ log: String, _ path: String) -> Bool {
        log.contains("\(path) announced while being copied") || log.contains("\(path) was copied before its announcement")
    }

    func testALargeFileIsCopiedWhileItsOriginHashesItAndInstalledOnceItsAnnouncementMatches() throws {
        let cluster = try makeCluster()
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        let expected = try writeLargeFile(cluster, "media/take-1.bin", size: 96 << 20, random: &random)

        let tree = try cluster.waitUntilConverged(timeout: 60)

        XCTAssertEqual(tree["media/take-1.bin"]?.hash, expected)
        for node in 1..<cluster.count {
            XCTAssertTrue(copiedEarly(cluster.log(node), "media/take-1.bin"),
                          "node\(node + 1) did not copy the offered file before its announcement:\n\(cluster.logTail(node))")
        }
        try eventually(cluster, "no copy of an offered file left in any .nsync/tmp", timeout: 10) {
            (0..<cluster.count).allSatisfy { cluster.temporaryFiles($0).isEmpty }
        }
    }

    func testACopyTakenBeforeTheFileChangedAgainIsNeverInstalled() throws {
        let cluster = try makeCluster()
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        let size = 128 << 20
        _ = try writeLargeFile(cluster, "vm/disk.img", size: size, random: &random)
        // Once node2 holds the start of an early copy, the start changes on node1.
        try eventually(cluster, "node2 to be copying vm/disk.img early", timeout: 20) {
            cluster.temporaryFiles(1).contains { $0.key.hasPrefix("offered-") && $0.value >= 1 << 20 }
        }
        let patch = Array("patched after node2 copied this part".utf8)
        let fd = try FileDescriptor.open(cluster.path(0, "vm/disk.img"), .writeOnly)
        try fd.closeAfter { try fd.write(all: patch, at: 0) }
        let hasher = SHA256()
        var final = try FileDescriptor.readWholeFile(cluster.path(0, "vm/disk.img"))
        XCTAssertEqual(final.count, size)
        hasher.update(final)
        final = []
        let expected = SHA256.hex(hasher.finalize())

        let tree = try cluster.waitUntilConverged(timeout: 90)

        // A copy with the old first bytes installed anywhere would keep the trees apart.
        XCTAssertEqual(tree["vm/disk.img"]?.hash, expected)
        for node in 0..<cluster.count {
            XCTAssertEqual(try cluster.tree(node)["vm/disk.img"]?.hash, expected, "node\(node + 1)")
        }
        let outcomes = (1..<cluster.count).map { node -> String in
            let log = cluster.log(node)
            if log.contains("dropped the early copy of vm/disk.img") { return "node\(node + 1): early copy dropped" }
            if log.contains("does not match the index's SHA-256") {
                return "node\(node + 1): adopted copy failed its hash, fetched again"
            }
            return "node\(node + 1): early copy matched (the change came before it was read)"
        }
        print("changed while offered: " + outcomes.joined(separator: "; "))
    }
}
