import Foundation
import XCTest
@testable import NsyncServer

/// kill -9 at the worst moments — a receiver mid-transfer, a node while
/// another makes a thousand changes, the origin while others fetch from it —
/// then a restart: the cluster converges, content is verified by hash,
/// nothing half-written ever shows in PATH, and no temporary file outlives
/// the install it was for.
final class EndToEndCrashTests: ClusterTestCase {
    func testReceiverKilledDuringLargeTransferResumesAfterRestartAndLeavesNoTemporaryFiles() throws {
        let cluster = try makeCluster()
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        let size = 128 << 20
        let started = Date()
        let expected = try writeLargeFile(cluster, 0, "big/video.bin", size: size, random: &random)

        // Kill node3 once part of the file, but not all, is in its .part.
        let partName = try cluster.poll("node3 to have received at least 1 MiB of big/video.bin", timeout: 30) { () -> String? in
            if access(cluster.path(2, "big/video.bin"), F_OK) == 0 {
                throw cluster.failure("node3 installed all 128 MiB before the test could kill it mid-transfer")
            }
            return cluster.temporaryFiles(2).first { $0.key.hasSuffix(".part") && $0.value >= 1 << 20 }?.key
        }
        // The origin, the only holder yet, held still for the moment of the
        // kill: "mid-transfer" then holds however fast the machine is.
        let origin = cluster.members[0].process!
        origin.signal(SIGSTOP)
        defer { origin.signal(SIGCONT) }
        try cluster.kill(2, signal: SIGKILL)
        origin.signal(SIGCONT)
        let killedAt = Date().timeIntervalSince(started)

        let leftover = cluster.temporaryFiles(2)[partName] ?? 0
        XCTAssertGreaterThanOrEqual(leftover, 1 << 20, "the partial bytes stay in .nsync/tmp/\(partName) to resume from")
        XCTAssertLessThan(leftover, Int64(size))
        let halfway = try cluster.tree(2, hashing: false)
        XCTAssertTrue(halfway.paths.allSatisfy { $0 == "big" }, "nothing half-written in node3's PATH: \(halfway.paths)")

        try cluster.restart(2)
        let tree = try cluster.waitUntilConverged(timeout: 60)
        let converged = Date().timeIntervalSince(started)

        XCTAssertEqual(tree.paths, ["big", "big/video.bin"])
        XCTAssertEqual(tree["big/video.bin"]?.size, UInt64(size))
        XCTAssertEqual(tree["big/video.bin"]?.hash, expected, "identical on every node, and the bytes written")
        XCTAssertTrue(cluster.log(2).contains("resuming big/video.bin from "),
                      "node3 resumed from its .part rather than starting again:\n\(cluster.logTail(2))")
        try assertNoTemporaryFilesRemain(cluster)
        print(String(format: "128 MiB: node3 killed %.1f s after the write started (%.0f MiB received), all converged after %.1f s",
                     killedAt, Double(leftover) / 1_048_576, converged))
    }

    func testNodeKilledWhileAThousandChangesAreMadeOnAnotherConvergesAfterRestart() throws {
        let cluster = try makeCluster()
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        // What node1's directory holds: path -> content.
        var model: [String: [UInt8]] = [:]
        for i in 0..<100 {
            let path = "d\(i % 10)/f\(i).txt"
            model[path] = random.bytes(Int(random.next() % 4096))
            try cluster.write(0, path, model[path]!)
        }
        try cluster.waitUntilConverged()
        let appliedBefore = try cluster.status(2).appliedIndex

        var created = 0, edited = 0, removed = 0
        var deletedNames: [String] = []
        let started = Date()
        for change in 0..<1000 {
            if change == 300 {
                // node3 is applying the first changes: kill it in the middle of that.
                try eventually(cluster, "node3 to apply some of the changes", timeout: 10) {
                    (try? cluster.status(2, timeout: 1).appliedIndex).map { $0 > appliedBefore } ?? false
                }
                try cluster.kill(2, signal: SIGKILL)
            }
            let existing = model.keys.sorted()
            let roll = random.next() % 10
            if roll < 4 || existing.count < 20 {
                // A new name, or (sometimes) one deleted earlier: a name deleted
                // and created again must sync (Nsync deleted it again).
                var path = "d\(random.next() % 10)/n\(change).dat"
                if roll == 0, let index = deletedNames.indices.randomElement(using: &random) {
                    path = deletedNames.remove(at: index)
                }
                model[path] = random.bytes(Int(random.next() % 4096))
                try cluster.write(0, path, model[path]!)
                created += 1
            } else if roll < 7 {
                let path = existing[Int(random.next() % UInt64(existing.count))]
                model[path] = random.bytes(Int(random.next() % 4096))
                try cluster.write(0, path, model[path]!)
                edited += 1
            } else {
                let path = existing[Int(random.next() % UInt64(existing.count))]
                model[path] = nil
                try cluster.remove(0, path)
                deletedNames.append(path)
                removed += 1
            }
        }
        let writing = Date().timeIntervalSince(started)
        try cluster.restart(2)
        let tree = try cluster.waitUntilConverged(timeout: 45)
        let converged = Date().timeIntervalSince(started)

        let files = tree.paths.filter { tree[$0]?.kind == .file }
        XCTAssertEqual(files, model.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        for (path, bytes) in model {
            XCTAssertEqual(tree[path]?.hash, SHA256.hex(SHA256.hash(bytes)), path)
        }
        XCTAssertEqual(tree.conflictCopies, [], "one writer makes no conflicts")
        try assertNoTemporaryFilesRemain(cluster)
        print(String(format: "1000 changes (%d creates, %d edits, %d deletes) in %.1f s with node3 killed at change 300; converged %.1f s after the first",
                     created, edited, removed, writing, converged))
    }

    func testOriginKilledWhileOthersFetchFromItConvergesAfterRestart() throws {
        let cluster = try makeCluster()
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        // Made outside PATH and moved in at once (`mv dir PATH/`), so every
        // file is announced together and the fetches overlap.
        var expected: [String: String] = [:]
        for i in 0..<6 {
            expected["media/clip-\(i).bin"] = try writeLargeFile(cluster, 0, "../staging/clip-\(i).bin",
                                                                 size: (16 << 20) + i * 4099, random: &random)
        }
        for i in 0..<40 {
            let bytes = random.bytes(Int(random.next() % 8192))
            try cluster.write(0, "../staging/small/s\(i).txt", bytes)
            expected["media/small/s\(i).txt"] = SHA256.hex(SHA256.hash(bytes))
        }
        let started = Date()
        try cluster.rename(0, "../staging", "media")

        _ = try cluster.poll("node2 or node3 to be receiving from node1", timeout: 30) { () -> Bool? in
            [1, 2].contains { node in cluster.temporaryFiles(node).contains { $0.key.hasSuffix(".part") && $0.value > 0 } } ? true : nil
        }
        try cluster.kill(0, signal: SIGKILL)
        let killedAt = Date().timeIntervalSince(started)

        // Whatever the survivors hold under its real name is whole.
        try cluster.waitForLeader()
        var heldEarly = 0
        for node in [1, 2] {
            let tree = try cluster.tree(node)
            for path in tree.paths where tree[path]?.kind == .file {
                XCTAssertEqual(tree[path]?.hash, expected[path], "\(path) on node\(node + 1) while node1 is down")
                heldEarly += 1
            }
        }

        try cluster.restart(0)
        let tree = try cluster.waitUntilConverged(timeout: 60)
        let converged = Date().timeIntervalSince(started)

        let files = tree.paths.filter { tree[$0]?.kind == .file }
        XCTAssertEqual(Set(files), Set(expected.keys))
        for (path, hash) in expected { XCTAssertEqual(tree[path]?.hash, hash, path) }
        try assertNoTemporaryFilesRemain(cluster)
        print(String(format: "96 MiB in 6 files + 40 small: origin killed %.2f s after the move (%d files already on the others), converged after %.1f s",
                     killedAt, heldEarly, converged))
    }

    // MARK: helpers

    /// Writes `size` bytes to `relative` on `node` — one random MiB repeated,
    /// each MiB stamped with its offset so a misplaced chunk changes the hash —
    /// and returns their SHA-256 hex.
    private func writeLargeFile(_ cluster: TestCluster, _ node: Int, _ relative: String, size: Int,
                                random: inout ClusterRandom) throws -> String {
        let block = random.bytes(1 << 20)
        let hasher = SHA256()
        try cluster.write(node, relative, size: size) { offset, count in
            var piece = Array(block[0..<count])
            withUnsafeBytes(of: UInt64(offset).bigEndian) { piece.replaceSubrange(0..<min(8, count), with: $0.prefix(count)) }
            hasher.update(piece)
            return piece
        }
        return SHA256.hex(hasher.finalize())
    }

    /// Every node's `.nsync/tmp` ends empty: resumed `.part` files are removed
    /// once installed, and none is left for a version nobody needs any more.
    /// (Removal runs on the thread pool after the install, hence the wait.)
    private func assertNoTemporaryFilesRemain(_ cluster: TestCluster, file: StaticString = #filePath, line: UInt = #line) throws {
        var left: [String: [String]] = [:]
        do {
            try eventually(cluster, "every node's .nsync/tmp to be empty", timeout: 10) {
                left = [:]
                for node in 0..<cluster.count where !cluster.temporaryFiles(node).isEmpty {
                    left[cluster.names[node]] = cluster.temporaryFiles(node).keys.sorted()
                }
                return left.isEmpty
            }
        } catch {
            XCTFail("temporary files left after convergence: \(left)", file: file, line: line)
        }
    }
}
