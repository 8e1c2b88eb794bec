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

    /// A node killed during an early copy keeps its bytes, and when the file
    /// is offered again after the restart, before its announcement, it does
    /// not start a new copy over them: the fetch of the announcement resumes
    /// them, also when the announcement comes long after the restart (offers
    /// count 2 s here). node2 reaches node1's file port through a
    /// `HostileHolder` that offers the file on its own (nothing is announced
    /// yet), sends half of it and stalls, then offers it again once node2 is back.
    func testAnEarlyCopyCutOffByARestartIsResumedNotStartedAgain() throws {
        let holder = try HostileHolder(certificates: TestCertificates.shared, name: "node1")
        addTeardownBlock { holder.stop() }
        let lifetime = 2.0
        let cluster = try makeCluster(extraArguments: ["--offer-lifetime", "\(Int(lifetime * 1000))"], label: "offer-restart",
                                      peerPorts: { node, peer, ports in
            node == 1 && peer == 0 ? (ports.cluster, holder.port) : ports
        })
        let staging = cluster.directory + "/staging"
        let path = "media/stalls-first.bin"
        let size = Int(Fetcher.speculationMinimumSize)
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        let block = random.bytes(1 << 20)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(size)
        for offset in stride(from: 0, to: size, by: block.count) {
            bytes += block
            withUnsafeBytes(of: UInt64(offset).bigEndian) { bytes.replaceSubrange(offset..<offset + 8, with: $0) }
        }
        try FileManager.default.createDirectory(atPath: staging + "/media", withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: staging + "/" + path, contents: Data(bytes)))
        holder.serve(from: staging)
        let offer = FileOffer(path: path, size: UInt64(size), mtime: 1_700_000_000_000_000_000)
        try eventually(cluster, "node2's file channel to the holder") { holder.readyConnections >= 1 }

        holder.offer(offer)
        let half = Int64(size / 2)
        let part = try cluster.poll("node2 to hold the half the holder sent before it stalled", timeout: 30) { () -> String? in
            cluster.temporaryFiles(1).first { $0.key.hasPrefix("offered-") && $0.value == half }?.key
        }
        try cluster.kill(1, signal: SIGKILL)
        XCTAssertEqual(cluster.temporaryFiles(1)[part], half, "the early copy's bytes stay for a resume")
        XCTAssertEqual(holder.requests(for: path).map(\.offset), [0])

        try cluster.restart(1)
        let receivedBefore = try cluster.poll("node2 to answer after its restart", timeout: 20) {
            (try? cluster.status(1, timeout: 1)).map { $0.bytesReceived ?? 0 }
        }
        let skipped = "not copying \(path) early: the copy cut off by the restart resumes once it is announced"
        // Offered again (the origin would, hashing the file once more) until
        // node2, its start-up scan done, has looked at the offer.
        _ = try cluster.poll("node2 to look at the new offer", timeout: 20) { () -> Bool? in
            if cluster.log(1).contains(skipped) { return true }
            holder.offer(offer)
            return nil
        }
        XCTAssertEqual(holder.requests(for: path).map(\.offset), [0], "no new early copy from the start")

        // The origin goes on hashing (a huge file): offers keep coming past
        // the lifetime counted from node2's start, and the part is kept.
        for _ in 0..<Int(lifetime * 2 / 0.25) {
            holder.offer(offer)
            Thread.sleep(forTimeInterval: 0.25)
        }
        XCTAssertEqual(cluster.temporaryFiles(1)[part], half, "kept while its file is offered")

        // Now the file is announced (node1 holds the same bytes, renamed
        // into place whole: one version).
        try cluster.write(0, path, bytes, mtime: offer.mtime)
        let tree = try cluster.waitUntilConverged(timeout: 60)
        XCTAssertEqual(tree[path]?.hash, SHA256.hex(SHA256.hash(bytes)))
        XCTAssertEqual(cluster.read(1, path), bytes)
        XCTAssertTrue(cluster.log(1).contains("resuming \(path) from \(half) bytes"),
                      "node2 resumed its early copy:\n\(cluster.logTail(1))")
        XCTAssertFalse(holder.requests(for: path).dropFirst().contains { $0.offset < UInt64(half) },
                       "nothing asked again from before the half: \(holder.requests(for: path).map(\.offset))")
        let received = try (cluster.status(1).bytesReceived ?? 0) - receivedBefore
        XCTAssertLessThan(received, UInt64(size) * 3 / 4, "node2 received only the half it lacked")
        try eventually(cluster, "nothing left in node2's .nsync/tmp", timeout: 10) { cluster.temporaryFiles(1).isEmpty }
    }
}
