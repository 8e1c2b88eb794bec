import Foundation
import XCTest

/// A rename on one node is a rename everywhere: the old name goes, the new
/// one has the same bytes, mode and mtime.
final class EndToEndRenameTests: ClusterTestCase {
    func testRenamedFileMovesOnEveryNodeKeepingContentAndModificationTime() throws {
        let cluster = try makeCluster()
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        let content = random.bytes(200_000)
        try cluster.write(0, "docs/draft.bin", content, mode: 0o640, mtime: EndToEndSyncTests.oldModificationTime)
        try cluster.waitUntilConverged()

        try cluster.rename(1, "docs/draft.bin", "docs/final.bin")
        var tree = try cluster.waitUntilConverged()
        XCTAssertNil(tree["docs/draft.bin"])
        XCTAssertEqual(tree["docs/final.bin"]?.mtime, EndToEndSyncTests.oldModificationTime)
        XCTAssertEqual(tree["docs/final.bin"]?.mode, 0o640)

        // Into another, new directory, on a third node.
        try cluster.rename(2, "docs/final.bin", "archive/2024/final.bin")
        tree = try cluster.waitUntilConverged()
        XCTAssertNil(tree["docs/final.bin"])
        XCTAssertEqual(tree.paths, ["archive", "archive/2024", "archive/2024/final.bin", "docs"])
        for node in 0..<cluster.count {
            XCTAssertEqual(cluster.read(node, "archive/2024/final.bin"), content, "on node\(node + 1)")
        }
    }

    func testRenamedDirectoryMovesWithItsContentsOnEveryNode() throws {
        let cluster = try makeCluster()
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        var contents: [String: [UInt8]] = [:]
        for name in ["2023/a.jpg", "2023/b.jpg", "2024/deep/c.raw", "readme.txt"] {
            contents[name] = random.bytes(Int.random(in: 0...100_000, using: &random))
            try cluster.write(0, "photos/" + name, contents[name]!)
        }
        try cluster.makeDirectory(0, "photos/empty")
        try cluster.makeSymlink(0, "photos/latest", target: "2023/b.jpg")
        let before = try cluster.waitUntilConverged()

        try cluster.rename(2, "photos", "albums/photos-renamed")

        let tree = try cluster.waitUntilConverged()
        XCTAssertEqual(tree.paths.filter { $0.hasPrefix("photos") }, [], "the old name is gone everywhere")
        for path in before.paths {
            let moved = "albums/photos-renamed" + path.dropFirst("photos".count)
            XCTAssertEqual(tree[moved], before[path], "\(path) moved to \(moved)")
        }
        XCTAssertEqual(tree.count, before.count + 1, "the same entries plus albums/: \(tree.paths)")
        for node in 0..<cluster.count {
            for (name, bytes) in contents {
                XCTAssertEqual(cluster.read(node, "albums/photos-renamed/" + name), bytes, "\(name) on node\(node + 1)")
            }
        }
    }

    /// Renames cost no transfer: the other nodes rename their own copies
    /// (whether the deletion of the old names and the new names commit
    /// together or apart), and file data received stays at zero.
    func testRenamedFilesAndDirectoriesMoveLocallyOnTheOtherNodesWithoutATransfer() throws {
        let cluster = try makeCluster()
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        var contents: [String: [UInt8]] = [:]
        for i in 0..<12 { contents["photos/2024/img\(i).jpg"] = random.bytes(300_000 + i * 50_000) }
        contents["photos/video.mp4"] = random.bytes(24 << 20)
        contents["notes/big.log"] = random.bytes(2 << 20)
        for (path, bytes) in contents { try cluster.write(0, path, bytes, mode: 0o640, mtime: EndToEndSyncTests.oldModificationTime) }
        let before = try cluster.waitUntilConverged(timeout: 60)
        let received = { (node: Int) throws -> UInt64 in try cluster.status(node).bytesReceived ?? 0 }
        let receivedBefore = try (0..<3).map(received)

        try cluster.rename(0, "photos", "albums/photos-2024")
        try cluster.rename(0, "notes/big.log", "archive/big.log")
        let tree = try cluster.waitUntilConverged(timeout: 60)

        XCTAssertEqual(tree.paths.filter { $0.hasPrefix("photos") || $0.hasPrefix("notes/") }, [], "the old names are gone")
        for (path, bytes) in contents {
            let moved = path.hasPrefix("photos") ? "albums/photos-2024" + path.dropFirst("photos".count) : "archive/big.log"
            XCTAssertEqual(tree[moved]?.mode, 0o640, moved)
            XCTAssertEqual(tree[moved]?.mtime, before[path]?.mtime, moved)
            for node in 1..<3 { XCTAssertEqual(cluster.read(node, moved), bytes, "\(moved) on node\(node + 1)") }
        }
        for node in 1..<3 {
            let moved = try received(node) - receivedBefore[node]
            XCTAssertEqual(moved, 0, "node\(node + 1) received \(moved) bytes of file data for a rename")
            XCTAssertTrue(cluster.log(node).contains("moved here from the old name"), "node\(node + 1) logged the local moves")
        }
    }

    /// A folder of many small files renamed: its old names' deletions
    /// must reach the index before the new names (which the node looks at
    /// once it has looked at every old one), or the other nodes fetch the
    /// files whose new name commits first (seen: 10-30% of 10,000 files).
    func testAFolderOfManySmallFilesRenamedCostsNoTransfer() throws {
        let cluster = try makeCluster()
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        for folder in 0..<30 {
            for file in 0..<100 { try cluster.write(0, "small/d\(folder)/f\(file).bin", random.bytes(4096)) }
        }
        try cluster.waitUntilConverged(timeout: 120)
        let received = { (node: Int) throws -> UInt64 in try cluster.status(node).bytesReceived ?? 0 }
        let receivedBefore = try (0..<3).map(received)

        try cluster.rename(0, "small", "small-renamed")
        let tree = try cluster.waitUntilConverged(timeout: 120)
        XCTAssertEqual(tree.paths.filter { $0.hasPrefix("small/") }, [])
        XCTAssertEqual(tree.paths.filter { $0.hasPrefix("small-renamed/") }.count, 3_030)
        for node in 1..<3 {
            let moved = try received(node) - receivedBefore[node]
            XCTAssertEqual(moved, 0, "node\(node + 1) received \(moved) bytes of file data for a rename")
        }
    }

    /// A copy made on one node, and a mode change, cost no transfer either:
    /// the other nodes copy the bytes they hold (checking them as they read).
    func testCopiesAndModeChangesAreCopiedLocallyOnTheOtherNodes() throws {
        let cluster = try makeCluster()
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        let bytes = random.bytes(3 << 20)
        try cluster.write(0, "data/original.bin", bytes, mode: 0o644)
        try cluster.waitUntilConverged(timeout: 60)
        let received = { (node: Int) throws -> UInt64 in try cluster.status(node).bytesReceived ?? 0 }
        let receivedBefore = try (0..<3).map(received)

        try cluster.write(0, "backup/copy.bin", bytes, mode: 0o600)
        XCTAssertEqual(chmod(cluster.path(0, "data/original.bin"), 0o755), 0)
        let tree = try cluster.waitUntilConverged(timeout: 60)

        XCTAssertEqual(tree["backup/copy.bin"]?.mode, 0o600)
        XCTAssertEqual(tree["data/original.bin"]?.mode, 0o755)
        for node in 1..<3 {
            XCTAssertEqual(cluster.read(node, "backup/copy.bin"), bytes, "the copy on node\(node + 1)")
            XCTAssertEqual(cluster.read(node, "data/original.bin"), bytes, "the original on node\(node + 1)")
            let moved = try received(node) - receivedBefore[node]
            XCTAssertEqual(moved, 0, "node\(node + 1) received \(moved) bytes of file data for a copy and a chmod")
            XCTAssertTrue(cluster.log(node).contains("copied here, nothing to fetch"), "node\(node + 1) logged the local copies")
        }
    }

    /// A directory renamed while its node was down: at start-up the node
    /// recognises the files by inode and stat (no hashing), and the others
    /// move their copies.
    func testADirectoryRenamedWhileItsNodeWasDownMovesWithoutATransfer() throws {
        let cluster = try makeCluster()
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        var contents: [String: [UInt8]] = [:]
        for i in 0..<6 { contents["raw/shot\(i).raw"] = random.bytes(400_000 + i * 1_000) }
        for (path, bytes) in contents { try cluster.write(0, path, bytes) }
        try cluster.waitUntilConverged(timeout: 60)
        let received = { (node: Int) throws -> UInt64 in try cluster.status(node).bytesReceived ?? 0 }
        let receivedBefore = try (1..<3).map(received)

        try cluster.kill(0, signal: SIGTERM)
        try cluster.rename(0, "raw", "archive/raw-2024")
        try cluster.restart(0)
        let tree = try cluster.waitUntilConverged(timeout: 60)

        XCTAssertEqual(tree.paths.filter { $0.hasPrefix("raw") }, [])
        for (path, bytes) in contents {
            let moved = "archive/raw-2024" + path.dropFirst("raw".count)
            for node in 0..<3 { XCTAssertEqual(cluster.read(node, moved), bytes, "\(moved) on node\(node + 1)") }
        }
        XCTAssertTrue(cluster.log(0).contains("scan: 6 files under new names have the inode and stat of files gone"),
                      "node1 kept the hashes of the renamed files")
        for node in 1..<3 {
            let moved = try received(node) - receivedBefore[node - 1]
            XCTAssertEqual(moved, 0, "node\(node + 1) received \(moved) bytes of file data for a rename")
        }
    }

    /// The bytes of files deleted elsewhere are kept only a while: with a
    /// 1.5 s lifetime, none is left 10 s later, and each node's disk holds
    /// exactly the tree.
    func testKeptBytesOfDeletedFilesAreDroppedAfterTheirLifetime() throws {
        let cluster = try makeCluster(extraArguments: ["--kept-file-lifetime", "1500"], label: "kept")
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        for i in 0..<20 { try cluster.write(0, "old/f\(i).bin", random.bytes(1_000 + i)) }
        try cluster.waitUntilConverged(timeout: 60)
        try cluster.remove(0, "old")
        try cluster.waitUntilConverged(timeout: 60)
        XCTAssertEqual(cluster.keptFiles(1).count + cluster.keptFiles(2).count, 40,
                       "the other nodes keep the deleted files' bytes a while")
        try cluster.poll("the kept bytes to be dropped on every node", timeout: 10) { () -> Bool? in
            (0..<3).allSatisfy { cluster.keptFiles($0).isEmpty } ? true : nil
        }
    }
}
