import Foundation
import XCTest

/// Daemons that are not root, as operators run them, and directories that
/// are read-only (0555: a Go module cache, an archive made read-only). The
/// mode is synced, so every node's copy is read-only too, and a daemon
/// that is not root can change nothing in it unless it makes it writable
/// for a moment (`LocalDisk.inWritableDirectory`). Before, nothing inside
/// such a directory ever reached the other nodes.
final class EndToEndReadOnlyDirectoryTests: ClusterTestCase {
    func testReadOnlyDirectoriesAndTheirContentsSyncWhenTheDaemonsAreNotRoot() throws {
        let cluster = try makeCluster(label: "ro", unprivileged: true)
        for node in 0..<cluster.count {
            let uid = try XCTUnwrap(Self.realUser(of: try XCTUnwrap(cluster.members[node].process).pid))
            XCTAssertNotEqual(uid, 0, "node\(node + 1) must not run as root, or this test shows nothing")
        }
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        let large = random.bytes(400_000)  // large enough for a copy to be made locally
        try cluster.write(0, "ro/a.txt", "first", mode: 0o444)
        try cluster.write(0, "ro/sub/b.bin", large)
        try cluster.makeDirectory(0, "ro/sub/empty", mode: 0o555)
        try cluster.makeSymlink(0, "ro/link", target: "a.txt")
        try cluster.giveToDaemonUser(0, "ro")
        try cluster.setMode(0, "ro/sub", 0o555)
        try cluster.setMode(0, "ro", 0o555)
        var tree = try cluster.waitUntilConverged()
        XCTAssertEqual(tree.paths, ["ro", "ro/a.txt", "ro/link", "ro/sub", "ro/sub/b.bin", "ro/sub/empty"])
        for path in ["ro", "ro/sub", "ro/sub/empty"] { XCTAssertEqual(tree[path]?.mode, 0o555, path) }
        XCTAssertEqual(tree["ro/a.txt"]?.mode, 0o444)

        // Inside the read-only directories: an edit of a read-only file, a
        // new file, a rename into the parent and a copy.
        try cluster.write(0, "ro/a.txt", "second", mode: 0o444)
        try cluster.write(0, "ro/new.txt", "new")
        try cluster.rename(0, "ro/sub/b.bin", "ro/moved.bin")
        try cluster.write(0, "ro/sub/copy.bin", large, mode: 0o444)
        tree = try cluster.waitUntilConverged()
        XCTAssertEqual(tree.paths, ["ro", "ro/a.txt", "ro/link", "ro/moved.bin", "ro/new.txt", "ro/sub",
                                    "ro/sub/copy.bin", "ro/sub/empty"])
        for path in ["ro", "ro/sub", "ro/sub/empty"] {
            XCTAssertEqual(tree[path]?.mode, 0o555, "\(path) is still read-only, never announced as the passing 0755")
        }
        for node in 0..<cluster.count {
            XCTAssertEqual(cluster.readText(node, "ro/a.txt"), "second", "on node\(node + 1)")
            XCTAssertEqual(cluster.read(node, "ro/moved.bin"), large, "on node\(node + 1)")
            XCTAssertEqual(cluster.read(node, "ro/sub/copy.bin"), large, "on node\(node + 1)")
        }

        // And the whole tree removed (the test is root: rm -rf just works
        // here; the other nodes remove from their read-only copies).
        try cluster.remove(0, "ro")
        tree = try cluster.waitUntilConverged()
        XCTAssertEqual(tree.paths, [])
        for node in 0..<cluster.count {
            XCTAssertEqual(cluster.temporaryFiles(node), [:],
                           "node\(node + 1) left nothing half-done in .nsync/tmp")
        }
    }

    /// The real user id of process `pid` (from /proc), or nil.
    static func realUser(of pid: pid_t) -> uid_t? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }) else { return nil }
        return line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap { uid_t($0) }
    }
}
