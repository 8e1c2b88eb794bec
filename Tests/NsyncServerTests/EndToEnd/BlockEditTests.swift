import Foundation
import XCTest
@testable import NsyncServer

/// A file edited in place (a database, a disk image) moves only the blocks
/// that changed: the fetcher sends the digests of the blocks it holds
/// (`BlockDigests`) and the holder answers `.same` for those it has too. A
/// file rewritten with other bytes moves whole, and either way the index's
/// SHA-256 checks the result.
final class EndToEndBlockEditTests: ClusterTestCase {
    func testAFileEditedInPlaceMovesOnlyTheChangedBlocks() throws {
        let cluster = try makeCluster(label: "blocks")
        var content = TestBytes.pseudoRandom(count: 8 << 20, seed: 11)
        try cluster.write(0, "db/main.db", content)
        try cluster.waitUntilConverged()
        let received = { (node: Int) throws -> UInt64 in try cluster.status(node).bytesReceived ?? 0 }
        let check = { (what: String, atLeast: UInt64, below: UInt64, since: [UInt64]) throws in
            try cluster.waitUntilConverged()
            for node in 0..<cluster.count {
                XCTAssertEqual(cluster.read(node, "db/main.db"), content, "\(what): node\(node + 1)")
            }
            for (i, node) in [1, 2].enumerated() {
                let moved = try received(node) - since[i]
                XCTAssertGreaterThanOrEqual(moved, atLeast, "\(what): node\(node + 1) received the changed bytes")
                XCTAssertLessThan(moved, below, "\(what): node\(node + 1) received \(moved) bytes")
            }
        }

        // 4 KiB overwritten in the middle, the size unchanged.
        var before = try [1, 2].map(received)
        let patch = TestBytes.pseudoRandom(count: 4 << 10, seed: 12)
        try TestBytes.overwrite(patch, at: (3 << 20) + 100, in: cluster.path(0, "db/main.db"))
        content.replaceSubrange(((3 << 20) + 100)..<((3 << 20) + 100 + patch.count), with: patch)
        let reusedBefore = try [1, 2].map { try cluster.status($0).bytesReused ?? 0 }
        try check("4 KiB overwritten", UInt64(patch.count), 1 << 20, before)
        for (i, node) in [1, 2].enumerated() {
            let reused = try (cluster.status(node).bytesReused ?? 0) - reusedBefore[i]
            XCTAssertGreaterThanOrEqual(reused, UInt64(7 << 20), "node\(node + 1) copied the unchanged blocks from its own file")
        }

        // Edited on another node this time, and cut shorter.
        before = try [0, 2].map(received)
        let edit = TestBytes.pseudoRandom(count: 1_000, seed: 13)
        try TestBytes.overwrite(edit, at: 1 << 20, in: cluster.path(1, "db/main.db"))
        XCTAssertEqual(truncate(cluster.path(1, "db/main.db"), off_t(6 << 20) + 7), 0)
        content.replaceSubrange((1 << 20)..<((1 << 20) + edit.count), with: edit)
        content.removeLast(content.count - (6 << 20) - 7)
        try cluster.waitUntilConverged()
        for node in 0..<cluster.count { XCTAssertEqual(cluster.read(node, "db/main.db"), content, "cut shorter: node\(node + 1)") }
        for (i, node) in [0, 2].enumerated() {
            let moved = try received(node) - before[i]
            XCTAssertGreaterThanOrEqual(moved, UInt64(edit.count), "cut shorter: node\(node + 1)")
            XCTAssertLessThan(moved, 1 << 20, "cut shorter: node\(node + 1) received \(moved) bytes")
        }

        // Rewritten with other bytes of the same size: every block differs.
        before = try [1, 2].map(received)
        content = TestBytes.pseudoRandom(count: content.count, seed: 14)
        try cluster.write(0, "db/main.db", content)
        try check("rewritten", UInt64(content.count), UInt64(content.count) + (1 << 20), before)
    }

    /// Edited in place again and again on one node: the others hash their
    /// copy's blocks before the first fetch only; afterwards they send the
    /// digests they worked out while writing the last version.
    func testRepeatedEditsInPlaceHashTheHeldCopyOnce() throws {
        let cluster = try makeCluster(label: "blocks-again")
        let path = "db/app.db"
        // Not a whole number of blocks: the last one is short.
        var content = TestBytes.pseudoRandom(count: (8 << 20) - 5_000, seed: 31)
        try cluster.write(0, path, content)
        try cluster.waitUntilConverged()
        for edit in 0..<3 {
            let before = try [1, 2].map { try cluster.status($0).bytesReceived ?? 0 }
            let patch = TestBytes.pseudoRandom(count: 3_000, seed: UInt64(40 + edit))
            let at = (edit + 1) * (2 << 20) - 1_000  // another two blocks each time: across a boundary
            try TestBytes.overwrite(patch, at: at, in: cluster.path(0, path))
            content.replaceSubrange(at..<(at + patch.count), with: patch)
            try cluster.waitUntilConverged()
            for node in 0..<cluster.count { XCTAssertEqual(cluster.read(node, path), content, "edit \(edit + 1): node\(node + 1)") }
            for (i, node) in [1, 2].enumerated() {
                let moved = try (cluster.status(node).bytesReceived ?? 0) - before[i]
                // The two blocks the edit touched, no more: one wrong digest would cost a block.
                XCTAssertGreaterThanOrEqual(moved, UInt64(patch.count), "edit \(edit + 1): node\(node + 1)")
                XCTAssertLessThanOrEqual(moved, 2 * (128 << 10), "edit \(edit + 1): node\(node + 1) received \(moved) bytes")
            }
        }
        for node in [1, 2] {
            let lines = cluster.log(node).split(separator: "\n").filter { $0.contains("fetching \(path) with the digests of 64 blocks") }
            XCTAssertEqual(lines.filter { $0.hasSuffix("(hashed)") }.count, 1, "node\(node + 1): \(lines)")
            XCTAssertEqual(lines.filter { $0.hasSuffix("(remembered)") }.count, 2, "node\(node + 1): \(lines)")
        }
    }

    /// A large file edited in place is offered while its origin hashes it:
    /// the other nodes hash the blocks of their copy meanwhile, so that the
    /// fetch asks with remembered digests as soon as the version is
    /// announced. Then only touched (the same bytes): nobody hashes again.
    func testTheHeldBlocksOfAnOfferedEditAreHashedWhileTheOriginHashesIt() throws {
        let cluster = try makeCluster(label: "blocks-ahead")
        let path = "vm/disk.img"
        var content = TestBytes.pseudoRandom(count: Int(Fetcher.speculationMinimumSize) + (3 << 20), seed: 51)
        try cluster.write(0, path, content)
        try cluster.waitUntilConverged(timeout: 60)
        let before = try [1, 2].map { try cluster.status($0).bytesReceived ?? 0 }
        let patch = TestBytes.pseudoRandom(count: 4 << 10, seed: 52)
        try TestBytes.overwrite(patch, at: 40 << 20, in: cluster.path(0, path))
        content.replaceSubrange((40 << 20)..<((40 << 20) + patch.count), with: patch)
        try cluster.waitUntilConverged(timeout: 60)
        for node in 0..<cluster.count { XCTAssertEqual(cluster.read(node, path), content, "node\(node + 1)") }
        let blockSize = Int(try XCTUnwrap(BlockDigests.blockSize(for: UInt64(content.count))))
        let blocks = (content.count + blockSize - 1) / blockSize
        for (i, node) in [1, 2].enumerated() {
            let log = cluster.log(node)
            XCTAssertTrue(log.contains("hashed the blocks of \(path) held here ahead of its new version"),
                          "node\(node + 1):\n\(cluster.logTail(node))")
            let fetches = log.split(separator: "\n").filter { $0.contains("fetching \(path) with the digests of \(blocks) blocks") }
            XCTAssertEqual(fetches.count, 1, "node\(node + 1): \(fetches)")
            XCTAssertTrue(fetches.allSatisfy { $0.hasSuffix("(remembered)") }, "node\(node + 1): \(fetches)")
            let moved = try (cluster.status(node).bytesReceived ?? 0) - before[i]
            XCTAssertLessThanOrEqual(moved, UInt64(2 * blockSize), "node\(node + 1) received \(moved) bytes")
        }
        // The origin hashed its new version's blocks beside its own look,
        // and answered both fetches from them: of the unchanged blocks it
        // read none (the changed block it read and sent).
        let origin = cluster.log(0)
        XCTAssertTrue(origin.contains("hashed the blocks of \(path) for the fetches of its new version"), cluster.logTail(0))
        let sent = origin.split(separator: "\n").filter { $0.contains("sent \(path) to ") && $0.contains(" by blocks: ") }
        XCTAssertEqual(sent.count, 2, "\(sent)")
        for line in sent {
            let numbers = line.split(separator: ":").last!.split(separator: " ").compactMap { UInt64($0) }
            XCTAssertEqual(numbers, [UInt64(content.count - blockSize), UInt64(content.count), UInt64(content.count - blockSize)],
                           "unchanged, of, not read: \(line)")
        }

        // Another large file, fetched whole (no digests remembered), then
        // only touched twice: a node hashes its copy through at most once for
        // both (the first touch's offer may have it hash its copy, which
        // stays remembered; or the touch is installed there before its offer
        // arrives, and then the offer's mtime is the one held: declined). A
        // touch installed while that pass runs changes the copy's stamp and
        // stops it; the next offer may then start one again.
        let other = "vm/other.img"
        let otherContent = TestBytes.pseudoRandom(count: Int(Fetcher.speculationMinimumSize) + (1 << 20), seed: 53)
        try cluster.write(0, other, otherContent)
        try cluster.waitUntilConverged(timeout: 60)
        let count = { (node: Int, text: String) in cluster.log(node).components(separatedBy: text).count - 1 }
        try cluster.setModificationTime(0, other, 1_600_000_000_000_000_000)
        try cluster.waitUntilConverged(timeout: 60)
        try cluster.setModificationTime(0, other, 1_600_000_001_000_000_000)
        try cluster.waitUntilConverged(timeout: 60)
        for node in [1, 2] {
            XCTAssertEqual(cluster.read(node, other), otherContent, "node\(node + 1)")
            let started = count(node, "hashing the blocks of \(other) held here while its origin hashes")
            let finished = count(node, "hashed the blocks of \(other) held here ahead")
            let stopped = count(node, "did not hash the blocks of \(other) ahead: it changed meanwhile")
            XCTAssertLessThanOrEqual(finished, 1, "node\(node + 1) hashed its copy through once at most:\n\(cluster.logTail(node))")
            XCTAssertEqual(started, finished + stopped, "node\(node + 1): every other pass stopped by a touch landing")
        }
        XCTAssertEqual(cluster.log(0).components(separatedBy: "offering \(other)").count - 1, 3,
                       "node1 offered the file for its creation and both touches")
    }

    /// A node that crashed in the middle of a block fetch finds the start
    /// of the new version in its `.part` after the restart: it resumes from
    /// there and asks for the rest with the held version's block digests
    /// (and the prefix's digest), so the rest moves by blocks too.
    func testABlockFetchResumedAfterARestartMovesOnlyTheChangedBlocks() throws {
        let cluster = try makeCluster(label: "blocks-resume")
        let path = "img/disk.img"
        var content = TestBytes.pseudoRandom(count: 8 << 20, seed: 21)
        try cluster.write(0, path, content)
        try cluster.waitUntilConverged()
        // The manifest is saved every 2 s.
        let before = try cluster.poll("node2's manifest to list \(path)", timeout: 10) {
            DaemonProbe.manifestVersion(root: cluster.path(1), path: path)
        }
        try cluster.kill(2)

        let patch = TestBytes.pseudoRandom(count: 4 << 10, seed: 22)
        try TestBytes.overwrite(patch, at: (6 << 20) + 10, in: cluster.path(0, path))
        content.replaceSubrange(((6 << 20) + 10)..<((6 << 20) + 10 + patch.count), with: patch)
        let version = try cluster.poll("node2 to hold the edit", timeout: 30) { () -> UInt64? in
            guard cluster.read(1, path) == content, let v = DaemonProbe.manifestVersion(root: cluster.path(1), path: path),
                  v > before else { return nil }
            return v
        }
        // What node3 had received when it crashed: the first 3 MiB of the new version.
        let part = "\(version)-\(SHA256.hex(SHA256.hash(content)).prefix(16))-\(Fetcher.pathDigest(path)).part"
        FileManager.default.createFile(atPath: cluster.path(2, ".nsync/tmp/" + part), contents: Data(content[..<(3 << 20)]))

        try cluster.restart(2)
        try cluster.waitUntilConverged()
        for node in 0..<cluster.count { XCTAssertEqual(cluster.read(node, path), content, "node\(node + 1)") }
        XCTAssertTrue(cluster.log(2).contains("resuming \(path) from \(3 << 20) bytes"),
                      "node3 resumed from its .part:\n\(cluster.logTail(2))")
        let status = try cluster.status(2)
        let received = status.bytesReceived ?? 0
        XCTAssertGreaterThanOrEqual(received, UInt64(patch.count))
        XCTAssertLessThan(received, 1 << 20, "node3 received \(received) bytes for the 5 MiB after its .part")
        XCTAssertGreaterThanOrEqual(status.bytesReused ?? 0, 4 << 20, "the rest copied from the version it held")
    }
}
