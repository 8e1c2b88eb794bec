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
}
