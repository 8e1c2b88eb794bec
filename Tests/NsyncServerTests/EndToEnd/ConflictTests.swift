import Foundation
import XCTest
@testable import NsyncServer

/// Concurrent changes to one path: Raft's commit order picks the winner and
/// the loser's bytes are kept as a conflict copy, on every node. Nothing a
/// user wrote is lost.
final class EndToEndConflictTests: ClusterTestCase {
    func testConcurrentWritesToOnePathKeepBothContentsOnEveryNode() throws {
        let cluster = try makeCluster()
        // Three paths, each edited on a different pair of nodes at once.
        let pairs = [(0, 1), (1, 2), (2, 0)]
        for (i, _) in pairs.enumerated() { try cluster.write(0, "shared-\(i).txt", "base \(i)\n") }
        try cluster.waitUntilConverged()

        try cluster.whilePaused {
            for (i, pair) in pairs.enumerated() {
                try cluster.write(pair.0, "shared-\(i).txt", "edit of shared-\(i) on node\(pair.0 + 1)\n")
                try cluster.write(pair.1, "shared-\(i).txt", "edit of shared-\(i) on node\(pair.1 + 1)\n")
            }
        }

        let tree = try cluster.waitUntilConverged()
        for (i, pair) in pairs.enumerated() {
            try assertBothKept(cluster, tree, path: "shared-\(i).txt", writers: [pair.0, pair.1])
        }
    }

    func testSameNewPathCreatedOnThreeNodesAtOnceKeepsAllThree() throws {
        let cluster = try makeCluster()
        try cluster.whilePaused {
            for node in 0..<cluster.count {
                try cluster.write(node, "notes/new.md", "created on node\(node + 1)\n")
            }
        }
        let tree = try cluster.waitUntilConverged()
        try assertBothKept(cluster, tree, path: "notes/new.md", writers: [0, 1, 2])
    }

    /// One node makes a name a file while another makes it a directory with
    /// files in it (and the other way round on a second name): the index
    /// stays a tree, one side keeps the name, the other survives whole as a
    /// conflict copy (a directory's copy keeps everything inside it).
    func testNameMadeAFileOnOneNodeAndADirectoryOnAnotherKeepsBoth() throws {
        let cluster = try makeCluster()
        let texts = ["report": "report as a file on node1\n", "report/part-1.txt": "part 1 on node2\n",
                     "report/sub/part-2.txt": "part 2 on node2\n",
                     "archive": "archive as a file on node3\n", "archive/2025.txt": "2025 on node1\n"]
        try cluster.whilePaused {
            try cluster.write(0, "report", texts["report"]!)
            try cluster.write(1, "report/part-1.txt", texts["report/part-1.txt"]!)
            try cluster.write(1, "report/sub/part-2.txt", texts["report/sub/part-2.txt"]!)
            try cluster.write(0, "archive/2025.txt", texts["archive/2025.txt"]!)
            try cluster.write(2, "archive", texts["archive"]!)
        }
        let tree = try cluster.waitUntilConverged(timeout: 60)

        for name in ["report", "archive"] {
            let kind = try XCTUnwrap(tree[name]?.kind, "\(name) exists: \(tree.paths)")
            let copies = tree.paths.filter { $0.hasPrefix(name + ".sync-conflict-") && !$0.dropFirst(name.count).contains("/") }
            XCTAssertEqual(copies.count, 1, "one side of \(name) is a conflict copy: \(tree.paths)")
            guard let copy = copies.first else { continue }
            XCTAssertEqual(tree[copy]?.kind, kind == .file ? .directory : .file, "the copy is the other side")
        }
        // Every text written is on every node, at its path or under the copy's name.
        for node in 0..<cluster.count {
            var found: Set<String> = []
            for path in tree.paths where tree[path]?.kind == .file {
                if let text = cluster.readText(node, path) { found.insert(text) }
            }
            XCTAssertEqual(found, Set(texts.values), "node\(node + 1) holds every text written: \(tree.paths)")
        }
    }

    /// One node deletes while another edits: the edit wins everywhere.
    func testEditRacingADeleteWinsOnEveryNode() throws {
        let cluster = try makeCluster()
        try cluster.write(0, "contested.txt", "original\n")
        try cluster.write(0, "contested-2.txt", "original\n")
        try cluster.waitUntilConverged()

        try cluster.whilePaused {
            try cluster.remove(0, "contested.txt")
            try cluster.write(1, "contested.txt", "edited on node2\n")
            // The other order of the two at once.
            try cluster.write(2, "contested-2.txt", "edited on node3\n")
            try cluster.remove(1, "contested-2.txt")
        }

        let tree = try cluster.waitUntilConverged()
        for node in 0..<cluster.count {
            XCTAssertEqual(cluster.readText(node, "contested.txt"), "edited on node2\n", "on node\(node + 1)")
            XCTAssertEqual(cluster.readText(node, "contested-2.txt"), "edited on node3\n", "on node\(node + 1)")
        }
        XCTAssertEqual(tree.conflictCopies, [], "a lost delete leaves nothing to keep")
    }

    /// Checks on every node: `path` holds one writer's content and each other
    /// writer's content is in exactly one conflict copy named for its node.
    private func assertBothKept(_ cluster: TestCluster, _ tree: ClusterTree, path: String, writers: [Int],
                                file: StaticString = #filePath, line: UInt = #line) throws {
        let contentOf = { (node: Int) in "\(path.hasPrefix("notes") ? "created on" : "edit of \(path.dropLast(4)) on") node\(node + 1)\n" }
        let (stem, ext) = ConflictName.splitExtension(path)
        let copies = tree.paths.filter { $0.hasPrefix(stem + ".sync-conflict-") && $0.hasSuffix(ext) }
        XCTAssertEqual(copies.count, writers.count - 1, "conflict copies of \(path): \(copies)", file: file, line: line)
        for node in 0..<cluster.count {
            var found: [String: String] = [:]
            for p in [path] + copies { found[p] = cluster.readText(node, p) }
            XCTAssertEqual(Set(found.values), Set(writers.map(contentOf)),
                           "on node\(node + 1), \(path) and its copies hold \(found)", file: file, line: line)
            for copy in copies {
                // name.sync-conflict-YYYYMMDD-HHMMSS-NODE.ext, NODE the one whose edit lost.
                let suffix = copy.dropFirst(stem.count + ".sync-conflict-".count).dropLast(ext.count)
                let parts = suffix.split(separator: "-")
                XCTAssertEqual(parts.count, 3, "\(copy) has the shape name.sync-conflict-YYYYMMDD-HHMMSS-NODE.ext", file: file, line: line)
                if parts.count == 3, let loser = Int(parts[2].dropFirst("node".count)) {
                    XCTAssertEqual(found[copy], contentOf(loser - 1), "\(copy) holds \(parts[2])'s edit", file: file, line: line)
                }
            }
        }
        for copy in copies {
            guard let node = cluster.names.firstIndex(where: { copy.hasSuffix("-\($0)" + ext) }) else { continue }
            XCTAssertTrue(try cluster.status(node).recentConflicts.contains(copy),
                          "`nsyncd status` on \(cluster.names[node]) lists the conflict copy \(copy) it made", file: file, line: line)
        }
    }
}
