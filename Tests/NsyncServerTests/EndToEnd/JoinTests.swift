import Foundation
import XCTest
@testable import NsyncServer

/// A member that starts late — with an empty directory, or with files of its
/// own — converges through the same loop as everything else (DESIGN.md: no
/// separate "initial sync"): the result is the union, and a name both sides
/// filled differently keeps both contents.
final class EndToEndJoinTests: ClusterTestCase {
    func testNodeJoiningWithAnEmptyDirectoryReceivesEverything() throws {
        let cluster = try makeCluster(running: [0, 1])
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        let binary = random.bytes(3 * (1 << 20) + 11)
        try cluster.write(0, "docs/guide.md", "# guide\n")
        try cluster.write(0, "docs/deep/er/note.txt", "deep\n", mtime: EndToEndSyncTests.oldModificationTime)
        try cluster.write(1, "data/blob.bin", binary)
        try cluster.write(1, "tools/run.sh", "#!/bin/sh\n", mode: 0o755)
        try cluster.makeDirectory(0, "empty", mode: 0o700)
        try cluster.makeSymlink(1, "latest", target: "data/blob.bin")
        try cluster.write(0, "gone.txt", "deleted before the join\n")
        try cluster.waitUntilConverged()
        try cluster.remove(1, "gone.txt")
        let before = try cluster.waitUntilConverged()

        let joined = Date()
        try cluster.restart(2)
        try cluster.waitForLeader()
        let tree = try cluster.waitUntilConverged()
        let catchUp = Date().timeIntervalSince(joined)

        XCTAssertEqual(tree, before, "node3 holds exactly what the others had")
        XCTAssertEqual(cluster.read(2, "data/blob.bin"), binary)
        XCTAssertEqual(tree["empty"]?.mode, 0o700)
        XCTAssertEqual(tree["latest"]?.target, "data/blob.bin")
        XCTAssertNil(tree["gone.txt"], "a file deleted before the join does not come back")

        // And it is a full member: what it writes reaches the others.
        try cluster.write(2, "from-node3.txt", "hello from the new member\n")
        XCTAssertEqual(try cluster.waitUntilConverged()["from-node3.txt"]?.size, 26)
        print(String(format: "empty node3 joined and converged in %.1f s", catchUp))
    }

    func testNodeJoiningWithDifferentFilesEndsWithTheUnionAndBothVersionsOfNamesThatDiffer() throws {
        let cluster = try makeCluster(running: [0, 1])
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        let shared = random.bytes(1 << 20)
        let old = EndToEndSyncTests.oldModificationTime
        // The cluster's side.
        try cluster.write(0, "same.txt", "identical on both sides\n", mtime: old)
        try cluster.write(0, "media/same.bin", shared, mtime: old + 1_000_000_000)
        try cluster.write(0, "differ.txt", "the cluster's version\n")
        try cluster.write(1, "docs/differ.md", "the cluster's doc\n")
        try cluster.write(1, "only-cluster.txt", "only the cluster had this\n")
        try cluster.waitUntilConverged()

        // The joiner's side, made while it was not running. One identical
        // file has the cluster's mtime (copied with `cp -p`), the other a
        // different one (copied without -p): both end with the record's mtime,
        // no new version and no conflict copy.
        try cluster.write(2, "same.txt", "identical on both sides\n", mtime: old)
        try cluster.write(2, "media/same.bin", shared, mtime: old + 7_000_000_000)
        try cluster.write(2, "differ.txt", "the joiner's version\n")
        try cluster.write(2, "docs/differ.md", "the joiner's doc\n")
        try cluster.write(2, "only-joiner.txt", "only the joiner had this\n")
        try cluster.write(2, "joiner-dir/nested.txt", "nested, joiner only\n")

        try cluster.restart(2)
        try cluster.waitForLeader()
        let tree = try cluster.waitUntilConverged()

        for path in ["same.txt", "media/same.bin", "differ.txt", "docs/differ.md", "only-cluster.txt",
                     "only-joiner.txt", "joiner-dir/nested.txt"] {
            XCTAssertEqual(tree[path]?.kind, .file, "\(path) is on every node")
        }
        XCTAssertEqual(cluster.read(1, "media/same.bin"), shared)
        try assertBothVersionsKept(cluster, tree, "differ.txt", ["the cluster's version\n", "the joiner's version\n"])
        try assertBothVersionsKept(cluster, tree, "docs/differ.md", ["the cluster's doc\n", "the joiner's doc\n"])
        XCTAssertEqual(tree.conflictCopies.count, 2, "identical files make no conflict copy: \(tree.conflictCopies)")
        XCTAssertEqual(tree.count, 7 + 3 + 2, "the union: \(tree.paths)")
    }

    /// Every node is seeded with the same files before its first start (as
    /// operators copy the data to each host first); two start, then the
    /// third joins: the records of its files reach it while its start-up
    /// scan has not walked or looked at its copies yet. No node fetches
    /// any of them or copies an offered one early (each looks first and
    /// finds the same bytes), and nothing is left in `.nsync/tmp`.
    func testANodeJoiningWithTheClustersFilesFetchesNoneOfThem() throws {
        let cluster = try makeCluster(label: "seeded", running: [])
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        let old = EndToEndSyncTests.oldModificationTime
        var shared: [(String, [UInt8])] = []
        for i in 0..<2_000 { shared.append(("tree/d\(i % 40)/f\(i).dat", random.bytes(8 << 10 + i))) }
        for (path, bytes) in shared {
            for node in 0..<3 { try cluster.write(node, path, bytes, mtime: old) }
        }
        // Large files (sparse: made at once, read as zeros) keep the looks
        // of the start-up scan busy for a few seconds, as a real tree does.
        for i in 0..<6 {
            for node in 0..<3 {
                try cluster.write(node, "tree/d\(i)/disk\(i).img", [], mtime: old)
                XCTAssertEqual(truncate(cluster.path(node, "tree/d\(i)/disk\(i).img"), off_t(512 << 20)), 0)
                try cluster.setModificationTime(node, "tree/d\(i)/disk\(i).img", old)
            }
        }
        try cluster.restart(0)
        try cluster.restart(1)
        try cluster.waitForLeader()
        try cluster.waitUntilConverged(timeout: 60)
        try cluster.restart(2)
        let tree = try cluster.waitUntilConverged(timeout: 60)
        XCTAssertEqual(tree.count, shared.count + 6 + 40 + 1, "the shared tree: \(tree.count) paths")
        XCTAssertTrue(tree.conflictCopies.isEmpty, "\(tree.conflictCopies)")
        for node in 0..<3 {
            // The images are all zeros: a fetch of one would come as `.zeros`.
            let status = try cluster.status(node)
            let received = (status.bytesReceived ?? 0) + (status.bytesZeros ?? 0)
            XCTAssertLessThan(received, 1 << 20, "node\(node + 1) had every file: it fetched \(received) bytes")
        }
        for node in 0..<3 {
            XCTAssertFalse(cluster.log(node).contains("copied here, nothing to fetch"), "node\(node + 1) copied no file it had")
            // Swept within a second once settled.
            try eventually(cluster, "node\(node + 1)'s .nsync/tmp to be empty", timeout: 10) { cluster.temporaryFiles(node).isEmpty }
        }
    }

    /// On every node `path` holds one of `contents` and exactly one conflict
    /// copy of it holds the other.
    private func assertBothVersionsKept(_ cluster: TestCluster, _ tree: ClusterTree, _ path: String, _ contents: Set<String>,
                                        file: StaticString = #filePath, line: UInt = #line) throws {
        let (stem, ext) = ConflictName.splitExtension(path)
        let copies = tree.conflictCopies.filter { $0.hasPrefix(stem + ".sync-conflict-") && $0.hasSuffix(ext) }
        XCTAssertEqual(copies.count, 1, "one conflict copy of \(path): \(tree.conflictCopies)", file: file, line: line)
        guard let copy = copies.first else { return }
        for node in 0..<cluster.count {
            let found = [cluster.readText(node, path), cluster.readText(node, copy)]
            XCTAssertEqual(Set(found.compactMap { $0 }), contents, "\(path) and \(copy) on node\(node + 1)", file: file, line: line)
        }
    }
}
