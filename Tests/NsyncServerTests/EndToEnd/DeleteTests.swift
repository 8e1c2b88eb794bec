import Foundation
import XCTest

/// Deletions travel like any other change, and a deleted name can live again.
final class EndToEndDeleteTests: ClusterTestCase {
    func testFileDeletedOnOneNodeIsRemovedOnEveryNode() throws {
        let cluster = try makeCluster()
        try cluster.write(0, "keep.txt", "stays\n")
        try cluster.write(0, "doomed.txt", "goes\n")
        try cluster.write(0, "dir/doomed-too.txt", "goes as well\n")
        try cluster.waitUntilConverged()

        try cluster.remove(1, "doomed.txt")
        try cluster.remove(2, "dir/doomed-too.txt")

        let tree = try cluster.waitUntilConverged()
        XCTAssertNil(tree["doomed.txt"])
        XCTAssertNil(tree["dir/doomed-too.txt"])
        XCTAssertEqual(tree["dir"]?.kind, .directory, "only the file was deleted")
        XCTAssertEqual(tree["keep.txt"]?.kind, .file)
        XCTAssertEqual(tree.count, 2, "\(tree.paths)")
    }

    func testWholeTreeDeletedOnOneNodeIsRemovedOnEveryNode() throws {
        let cluster = try makeCluster()
        try cluster.write(0, "other.txt", "not in the tree\n")
        for d in 0..<5 {
            for f in 0..<4 { try cluster.write(0, "project/src/module-\(d)/file-\(f).swift", "// \(d) \(f)\n") }
        }
        try cluster.makeDirectory(0, "project/build/empty")
        try cluster.makeSymlink(0, "project/current", target: "src/module-0")
        try cluster.write(0, "project/bin/tool", "#!/bin/sh\n", mode: 0o755)
        let before = try cluster.waitUntilConverged()
        XCTAssertEqual(before.paths.filter { $0.hasPrefix("project") }.count, 1 + 1 + 5 + 20 + 2 + 1 + 2)

        try cluster.remove(1, "project")

        let tree = try cluster.waitUntilConverged()
        XCTAssertEqual(tree.paths, ["other.txt"])
    }

    /// Nsync (the Python original) deleted a re-created file again, because
    /// the old deletion was replayed over the new file. Here the new file
    /// must arrive everywhere and stay: once while the tombstone is still in
    /// the index, and once after the leader has forgotten it.
    func testDeletedNameCreatedAgainSyncsAndStaysOnEveryNode() throws {
        let cluster = try makeCluster()
        try cluster.write(0, "soon.txt", "first life\n")
        try cluster.write(0, "later.txt", "first life\n")
        try cluster.write(0, "nest/egg.txt", "first life\n")
        try cluster.waitUntilConverged()

        try cluster.remove(1, "soon.txt")
        try cluster.remove(1, "later.txt")
        try cluster.remove(2, "nest")
        let deleted = try cluster.waitUntilConverged()
        XCTAssertEqual(deleted.count, 0, "\(deleted.paths)")

        // At once, while the tombstones may still be in the index: on the
        // node that deleted, and on another.
        try cluster.write(1, "soon.txt", "second life\n")
        try cluster.write(0, "nest/egg.txt", "hatched\n")
        try cluster.waitUntilConverged()
        // Once every member holds the deletion the leader forgets the
        // tombstone: the index then holds only the two live files and nest/.
        try eventually(cluster, "the tombstone of later.txt to be forgotten") {
            try (0..<cluster.count).allSatisfy { try cluster.status($0).files == 3 }
        }
        try cluster.write(2, "later.txt", "second life\n")
        try cluster.waitUntilConverged()

        // A later change is applied after everything above: if an old
        // deletion were replayed, it would have been by then.
        try cluster.write(0, "barrier.txt", "after everything\n")
        try cluster.waitUntilConverged()
        for node in 0..<cluster.count {
            XCTAssertEqual(cluster.readText(node, "soon.txt"), "second life\n", "on node\(node + 1)")
            XCTAssertEqual(cluster.readText(node, "later.txt"), "second life\n", "on node\(node + 1)")
            XCTAssertEqual(cluster.readText(node, "nest/egg.txt"), "hatched\n", "on node\(node + 1)")
        }
    }
}
