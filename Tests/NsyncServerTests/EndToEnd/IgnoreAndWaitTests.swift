import Foundation
import XCTest
@testable import NsyncServer

/// `.nsyncignore` and the editor defaults keep files out of the cluster on
/// every node; `nsyncd wait` is a barrier a script can rely on: when it
/// exits 0, every reachable member holds what was written before it ran.
final class EndToEndIgnoreAndWaitTests: ClusterTestCase {
    static let ignoreFile = """
        # scratch and build output stay local
        *.tmp
        build/
        !keep.tmp

        """

    func testIgnoredFilesStayOnTheirNodeWhileNegatedOnesAndTheIgnoreFileSync() throws {
        let cluster = try makeCluster()
        try cluster.write(0, ".nsyncignore", Self.ignoreFile)
        try cluster.waitUntilConverged()

        let ignored = ["scratch.tmp", "sub/other.tmp", "build/out.o", "build/deep/x.txt", "sub/build/y.o"]
        let synced = ["keep.tmp", "sub/keep.tmp", "notes.txt", "sub/build.txt", "tmp.txt"]
        for path in ignored + synced { try cluster.write(0, path, "\(path) on node1\n") }
        // The rules reached node2 with .nsyncignore: what it ignores stays there too.
        try cluster.write(1, "build/from-node2.o", "node2's build output\n")
        try cluster.write(1, "node2.tmp", "node2's scratch\n")
        try cluster.write(1, "from-node2.txt", "synced\n")
        try waitUntilSyncedExceptIgnored(cluster, lastWritten: [(0, "tmp.txt"), (1, "from-node2.txt")])

        for node in 0..<cluster.count {
            let tree = try cluster.tree(node)
            for path in synced + ["from-node2.txt"] { XCTAssertEqual(tree[path]?.kind, .file, "\(path) on node\(node + 1)") }
            XCTAssertEqual(cluster.readText(node, ".nsyncignore"), Self.ignoreFile, "the rules themselves sync")
            for path in ignored where node != 0 { XCTAssertNil(tree[path], "ignored \(path) is not on node\(node + 1)") }
            for path in ["build/from-node2.o", "node2.tmp"] where node != 1 {
                XCTAssertNil(tree[path], "ignored \(path) is not on node\(node + 1)")
            }
            if node != 0 { XCTAssertNil(tree["sub/build"], "the ignored directory itself is not on node\(node + 1)") }
            if node == 2 { XCTAssertNil(tree["build"], "the ignored directory itself is not on node3") }
        }
        XCTAssertEqual(cluster.readText(0, "build/out.o"), "build/out.o on node1\n", "an ignored file is left alone where it is")
    }

    func testEditorSwapAndBackupFilesAreNotSyncedByDefault() throws {
        let cluster = try makeCluster()
        let ignored = [".x.swp", "x~", "docs/.notes.md.swp", "docs/notes.md~", ".#x"]
        for path in ignored { try cluster.write(0, path, "editor state\n") }
        try cluster.write(0, "x", "the real file\n")
        try cluster.write(0, "docs/notes.md", "the real notes\n")
        try waitUntilSyncedExceptIgnored(cluster, lastWritten: [(0, "docs/notes.md")])

        for node in 1..<cluster.count {
            let tree = try cluster.tree(node)
            XCTAssertEqual(tree.paths, ["docs", "docs/notes.md", "x"], "on node\(node + 1)")
        }
    }

    /// node1 deletes `proj` while node2 holds ignored files in it (build
    /// output, an editor's swap file): those are left alone, so `proj` and
    /// `proj/src` stay on node2 only, listed by its status as kept. Every
    /// node holds the deletion all the same, so `nsyncd wait` settles
    /// everywhere (old code: the deletion stayed unheld, node2 retried the
    /// removal forever and no node's wait ever settled).
    private func keptFolderCluster() throws -> TestCluster {
        let cluster = try makeCluster(extraArguments: ["--kept-directory-check", "300"], label: "keptdir")
        try cluster.write(0, ".nsyncignore", Self.ignoreFile)
        try cluster.write(0, "proj/src/a.c", "int main;\n")
        try cluster.write(0, "proj/README", "read me\n")
        try cluster.waitUntilConverged()
        try cluster.write(1, "proj/build/a.o", "node2's build output\n")
        try cluster.write(1, "proj/src/.a.c.swp", "node2's editor state\n")
        try cluster.remove(0, "proj")
        try eventually(cluster, "proj gone from node3 and kept on node2") {
            !FileManager.default.fileExists(atPath: cluster.path(2, "proj"))
                && (try? cluster.status(1))?.keptDirectories == ["proj", "proj/src"]
        }
        for node in 0..<cluster.count {
            let result = try cluster.runCommand(["wait", cluster.path(node), "--timeout", "20s"], timeout: 30)
            XCTAssertEqual(result.status, 0, "nsyncd wait on node\(node + 1): \(result.output)")
        }
        XCTAssertEqual(cluster.readText(1, "proj/build/a.o"), "node2's build output\n", "ignored files are left alone")
        XCTAssertEqual(cluster.readText(1, "proj/src/.a.c.swp"), "node2's editor state\n")
        XCTAssertNil(cluster.read(1, "proj/src/a.c"), "what was synced is removed")
        XCTAssertNil(cluster.read(1, "proj/README"))
        let log = cluster.log(1)
        XCTAssertTrue(log.contains("keeping proj: deleted on another node, but it holds what this node does not sync (ignored: "),
                      log.suffix(3000).description)
        XCTAssertTrue(try cluster.status(1).rendered().contains("kept here, deleted elsewhere"))
        return cluster
    }

    /// ... and it is not announced again after a restart, and goes once
    /// the ignored files do.
    func testAFolderDeletedElsewhereIsKeptForItsIgnoredFilesAndGoesWithThem() throws {
        let cluster = try keptFolderCluster()
        try cluster.restart(1)
        try cluster.waitForLeader()
        try cluster.write(0, "marker.txt", "after the restart\n")
        try waitUntilSyncedExceptIgnored(cluster, lastWritten: [(0, "marker.txt")])
        for node in [0, 2] { XCTAssertNil(try cluster.tree(node)["proj"], "proj came back on node\(node + 1) after node2's restart") }
        XCTAssertEqual(try cluster.status(1).keptDirectories, ["proj", "proj/src"], "still kept after the restart")

        try cluster.remove(1, "proj/build")
        try cluster.remove(1, "proj/src/.a.c.swp")
        try eventually(cluster, "proj removed on node2 once its ignored files are gone") {
            !FileManager.default.fileExists(atPath: cluster.path(1, "proj"))
                && (try? cluster.status(1))?.keptDirectories == nil
        }
        for node in [0, 2] { XCTAssertNil(try cluster.tree(node)["proj"], "proj on node\(node + 1)") }
    }

    /// ... and a folder the user makes in its place (`rm -rf proj; mkdir
    /// proj`, which on ext4 can reuse the inode number) is theirs: it is
    /// announced, and no check removes it.
    func testAFolderMadeWhereAKeptOneWasIsAnnouncedNotRemoved() throws {
        let cluster = try keptFolderCluster()
        try cluster.remove(1, "proj")
        XCTAssertEqual(mkdir(cluster.path(1, "proj"), 0o755), 0)
        try eventually(cluster, "node2's new proj on every node") {
            (0..<cluster.count).allSatisfy { (try? cluster.tree($0))?["proj"]?.kind == .directory }
        }
        usleep(1_000_000)  // several kept-folder checks (every 300 ms here)
        try waitUntilSyncedExceptIgnored(cluster, lastWritten: [])
        for node in 0..<cluster.count {
            XCTAssertEqual(try cluster.tree(node)["proj"]?.kind, .directory, "proj on node\(node + 1)")
        }
        XCTAssertNil(try cluster.status(1).keptDirectories)
    }

    /// ... and a file written into it syncs, bringing the folder back on every node.
    func testAFileWrittenIntoAKeptFolderSyncsAndTheFolderIsBackEverywhere() throws {
        let cluster = try keptFolderCluster()
        try cluster.write(1, "proj/src/b.c", "new on node2\n")
        try eventually(cluster, "proj/src/b.c on every node, nothing kept any more") {
            (0..<cluster.count).allSatisfy { cluster.readText($0, "proj/src/b.c") == "new on node2\n" }
                && (try? cluster.status(1))?.keptDirectories == nil
        }
        try waitUntilSyncedExceptIgnored(cluster, lastWritten: [(1, "proj/src/b.c")])
        for node in 0..<cluster.count {
            let tree = try cluster.tree(node)
            XCTAssertEqual(tree["proj"]?.kind, .directory, "proj on node\(node + 1)")
            XCTAssertEqual(tree["proj/src"]?.kind, .directory, "proj/src on node\(node + 1)")
        }
        XCTAssertEqual(cluster.readText(1, "proj/build/a.o"), "node2's build output\n")
    }

    /// Write, `nsyncd wait`, and look at once (no polling): the file is
    /// already on every node. Several rounds, as a barrier that is only
    /// mostly right fails some of them.
    func testWaitReturnsZeroOnlyOnceEveryNodeHoldsWhatWasWrittenBeforeIt() throws {
        let cluster = try makeCluster()
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        var timings: [String] = []
        for round in 0..<4 {
            let writer = round % cluster.count
            // Sizes from an empty file to 24 MiB: the wait must cover the transfer.
            let size = [0, 300, 1 << 20, 24 << 20][round]
            let bytes = random.bytes(size)
            let path = "barrier/round-\(round).bin"
            try cluster.write(writer, path, bytes)
            let started = Date()
            let result = try cluster.runCommand(["wait", cluster.path(writer), "--timeout", "30s"], timeout: 40)
            timings.append(String(format: "%d B %.2f s", size, Date().timeIntervalSince(started)))
            XCTAssertEqual(result.status, 0, "nsyncd wait on node\(writer + 1): \(result.output)")
            for node in 0..<cluster.count {
                XCTAssertEqual(cluster.read(node, path), bytes, "\(path) on node\(node + 1) as soon as `nsyncd wait` returned")
            }
        }
        // The same request the CLI sends, sent the moment the file is closed
        // (no process start in between): the daemon must not answer before
        // it has looked at what its watcher already reported.
        for round in 0..<10 {
            let writer = round % cluster.count
            let path = "barrier/at-once-\(round).txt"
            let content = "written just before the wait, round \(round)\n"
            try cluster.write(writer, path, content)
            let result = try ControlClient.wait(root: cluster.path(writer), timeoutMilliseconds: 30_000)
            XCTAssertTrue(result.ok, "wait on node\(writer + 1): \(result.missing)")
            for node in 0..<cluster.count {
                XCTAssertEqual(cluster.readText(node, path), content, "\(path) on node\(node + 1) when the wait answered")
            }
        }
        print("nsyncd wait returned after: \(timings.joined(separator: ", "))")
    }

    func testWaitWithAPeerStoppedReturnsZeroForTheReachableMembers() throws {
        let cluster = try makeCluster()
        try cluster.write(0, "before.txt", "everyone has this\n")
        try cluster.waitUntilConverged()
        try cluster.kill(2, signal: SIGKILL)

        try cluster.write(0, "while-down.txt", "node3 is down\n")
        let started = Date()
        let result = try cluster.runCommand(["wait", cluster.path(0), "--timeout", "30s"], timeout: 40)
        let took = Date().timeIntervalSince(started)
        XCTAssertEqual(result.status, 0, "nsyncd wait with node3 down: \(result.output)")
        XCTAssertLessThan(took, 15, "the stopped peer is not waited for")
        XCTAssertEqual(cluster.readText(1, "while-down.txt"), "node3 is down\n", "the reachable member has it")

        // Asking the killed node itself (its control socket file is still there): a clear no.
        let dead = try cluster.runCommand(["wait", cluster.path(2), "--timeout", "5s"], timeout: 20)
        XCTAssertNotEqual(dead.status, 0)
        XCTAssertTrue(dead.output.contains("no nsyncd is running on \(cluster.path(2))"), dead.output)
        print(String(format: "nsyncd wait with a peer down: %.2f s", took))
    }

    func testWaitWithNoDaemonExitsNonZeroWithAClearMessage() throws {
        // Directories only: no daemon is started.
        let cluster = try TestCluster(nodes: 1, label: "nodaemon", running: [])
        defer { cluster.shutDown() }
        let started = Date()
        let result = try cluster.runCommand(["wait", cluster.path(0), "--timeout", "30s"], timeout: 40)
        XCTAssertEqual(result.status, 1, result.output)
        XCTAssertTrue(result.output.contains("nsyncd: no nsyncd is running on \(cluster.path(0))"), result.output)
        XCTAssertLessThan(Date().timeIntervalSince(started), 10, "no daemon is known at once, not at the timeout")

        let missing = try cluster.runCommand(["wait", cluster.path(0, "no/such/dir"), "--timeout", "1s"], timeout: 20)
        XCTAssertNotEqual(missing.status, 0, missing.output)
        XCTAssertTrue(missing.output.contains("no nsyncd is running"), missing.output)
    }

    // MARK: helpers

    /// Waits until each `(node, path)` written last is on every node and
    /// `nsyncd wait` succeeds on every node: then anything that was going to
    /// sync has, and what is missing was ignored.
    private func waitUntilSyncedExceptIgnored(_ cluster: TestCluster, lastWritten: [(Int, String)]) throws {
        try eventually(cluster, "\(lastWritten.map(\.1)) on every node") {
            lastWritten.allSatisfy { writer, path in
                let content = cluster.read(writer, path)
                return (0..<cluster.count).allSatisfy { cluster.read($0, path) == content }
            }
        }
        for node in 0..<cluster.count {
            let result = try cluster.runCommand(["wait", cluster.path(node), "--timeout", "20s"], timeout: 30)
            XCTAssertEqual(result.status, 0, "nsyncd wait on node\(node + 1): \(result.output)")
        }
    }
}
