import Foundation
import XCTest
@testable import NsyncServer

/// Three real nsyncd processes on loopback: what one node's user writes
/// appears, identical, on the others.
final class EndToEndSyncTests: ClusterTestCase {
    /// 2001-09-09T01:46:40.123456789Z: far from "now", with nanoseconds that
    /// a sync keeping only seconds (or microseconds) would lose.
    static let oldModificationTime: Int64 = 1_000_000_000_123_456_789

    func testVariedTreeWrittenOnOneNodeConvergesIdenticallyOnAll() throws {
        let cluster = try makeCluster()
        try cluster.write(0, "README.md", "# top\n")
        try cluster.write(0, "a/b/c/d/deep.txt", "four levels down\n")
        try cluster.write(0, "a/b/mid.txt", "two levels down\n")
        try cluster.write(0, "empty.txt", "")
        try cluster.makeDirectory(0, "empty-dir")
        try cluster.makeDirectory(0, "x/y/z")
        try cluster.makeDirectory(0, "private", mode: 0o700)
        try cluster.write(0, "private/secret.txt", "only me\n", mode: 0o600)
        try cluster.write(0, "bin/run.sh", "#!/bin/sh\necho hi\n", mode: 0o755)
        try cluster.write(0, "my documents/file with spaces.txt", "spaces\n")
        try cluster.write(0, "ünïcødé/日本語のファイル.txt", "unicode\n")
        try cluster.write(0, "emoji 🎉 party.md", "🎉\n")
        try cluster.write(0, "accents/caf\u{E9}.txt", "precomposed\n")
        try cluster.write(0, "old.txt", "written long ago\n", mtime: Self.oldModificationTime)
        try cluster.makeSymlink(0, "link-to-readme", target: "README.md")
        try cluster.makeSymlink(0, "a/b/up-link", target: "../../bin/run.sh")

        let tree = try cluster.waitUntilConverged()

        XCTAssertEqual(tree["a/b/c/d/deep.txt"]?.kind, .file)
        XCTAssertEqual(tree["empty.txt"]?.size, 0)
        XCTAssertEqual(tree["empty-dir"]?.kind, .directory)
        XCTAssertEqual(tree["x/y/z"]?.kind, .directory)
        XCTAssertEqual(tree["private"]?.mode, 0o700)
        XCTAssertEqual(tree["private/secret.txt"]?.mode, 0o600)
        XCTAssertEqual(tree["bin/run.sh"]?.mode, 0o755)
        XCTAssertEqual(tree["my documents/file with spaces.txt"]?.kind, .file)
        XCTAssertEqual(tree["ünïcødé/日本語のファイル.txt"]?.kind, .file)
        XCTAssertEqual(tree["emoji 🎉 party.md"]?.kind, .file)
        XCTAssertEqual(tree["old.txt"]?.mtime, Self.oldModificationTime)
        XCTAssertEqual(tree["link-to-readme"]?.target, "README.md")
        XCTAssertEqual(tree["a/b/up-link"]?.target, "../../bin/run.sh")
        XCTAssertEqual(tree["accents/caf\u{E9}.txt"]?.kind, .file)
        XCTAssertEqual(tree.count, 26, "every path written, plus the directories made for them: \(tree.paths)")
    }

    /// A touch (new mtime, same bytes) on any node reaches every node as an
    /// mtime only: the bytes do not move again (the file keeps its inode).
    /// A file written without a pause and never closed (a log appended
    /// every 100 ms) never settles; it is still synced while it grows: a
    /// prefix of what was written reaches the other nodes while the writer
    /// runs, and everything once it closes.
    func testAFileAppendedWithoutPauseIsSyncedWhileItIsStillWritten() throws {
        let cluster = try makeCluster(label: "busy-writer")
        let path = cluster.path(0, "app.log")
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        guard fd >= 0 else { return }
        var written: [UInt8] = []
        var closed = false
        defer { if !closed { close(fd) } }
        let started = Date()
        var seen: [Int: [UInt8]] = [:]
        for line in 0..<150 {  // at most 15 s of appends, one every 100 ms
            let text = Array("line \(line) at \(String(format: "%.1f", Date().timeIntervalSince(started))) s\n".utf8)
            XCTAssertEqual(text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }, text.count)
            written += text
            for node in [1, 2] where seen[node] == nil {
                if let copy = cluster.read(node, "app.log"), !copy.isEmpty { seen[node] = copy }
            }
            if seen.count == 2 { break }
            usleep(100_000)
        }
        let whileWriting = Date().timeIntervalSince(started)
        for node in [1, 2] {
            let copy = seen[node] ?? []
            XCTAssertFalse(copy.isEmpty, "node\(node + 1) got nothing of app.log in \(whileWriting) s of appends")
            XCTAssertTrue(written.starts(with: copy), "node\(node + 1) has a prefix of what was written")
        }
        close(fd)
        closed = true
        let tree = try cluster.waitUntilConverged()
        XCTAssertEqual(cluster.read(1, "app.log"), written)
        XCTAssertEqual(cluster.read(2, "app.log"), written)
        XCTAssertNotNil(tree["app.log"])
        print("busy writer: app.log on both other nodes after \(String(format: "%.1f", whileWriting)) s of appends every 100 ms")
    }

    func testTouchOnAnyNodeSetsTheModificationTimeEverywhere() throws {
        let cluster = try makeCluster()
        try cluster.write(0, "notes.txt", String(repeating: "touch me\n", count: 10_000))
        _ = try cluster.waitUntilConverged()
        let before = try inodes(cluster, "notes.txt")

        try cluster.setModificationTime(1, "notes.txt", Self.oldModificationTime)
        var tree = try cluster.waitUntilConverged()
        XCTAssertEqual(tree["notes.txt"]?.mtime, Self.oldModificationTime)
        XCTAssertEqual(tree.paths, ["notes.txt"], "a touch is not a conflict")
        XCTAssertEqual(try inodes(cluster, "notes.txt"), before, "only the mtime changed; nothing was fetched")

        // And back from another node, to a later time.
        try cluster.setModificationTime(2, "notes.txt", Self.oldModificationTime + 86_400_000_000_000)
        tree = try cluster.waitUntilConverged()
        XCTAssertEqual(tree["notes.txt"]?.mtime, Self.oldModificationTime + 86_400_000_000_000)
        XCTAssertEqual(cluster.readText(0, "notes.txt"), String(repeating: "touch me\n", count: 10_000))
    }

    /// A symlink's own mtime syncs like a file's: `cp -a` makes a link and
    /// sets its time a moment later (after the node may have announced it),
    /// a `touch -h` on another node follows, and one made while a node is
    /// down is found when it starts. The link is never made again for it.
    func testASymlinksOwnMtimeIsSyncedAlsoWhenSetAfterTheLinkWasAnnounced() throws {
        let cluster = try makeCluster()
        try cluster.makeSymlink(0, "links/latest", target: "../releases/1.2")
        // As cp -a does: the link, then at once its time (while its put may be on its way).
        for n in 0..<20 {
            try cluster.makeSymlink(0, "copied/link-\(n)", target: "../data-\(n)")
            try cluster.setModificationTime(0, "copied/link-\(n)", Self.oldModificationTime + Int64(n))
        }
        let copied = try cluster.waitUntilConverged()
        for n in 0..<20 {
            XCTAssertEqual(copied["copied/link-\(n)"]?.mtime, Self.oldModificationTime + Int64(n))
        }
        let before = try inodes(cluster, "links/latest")

        try cluster.setModificationTime(0, "links/latest", Self.oldModificationTime)
        var tree = try cluster.waitUntilConverged()
        XCTAssertEqual(tree["links/latest"]?.mtime, Self.oldModificationTime)
        XCTAssertEqual(tree["links/latest"]?.target, "../releases/1.2")

        try cluster.setModificationTime(2, "links/latest", Self.oldModificationTime + 1)
        tree = try cluster.waitUntilConverged()
        XCTAssertEqual(tree["links/latest"]?.mtime, Self.oldModificationTime + 1)
        XCTAssertEqual(try inodes(cluster, "links/latest"), before, "only the links' mtimes changed; none was made again")

        try cluster.kill(1, signal: SIGTERM)
        try cluster.setModificationTime(1, "links/latest", Self.oldModificationTime + 2)
        try cluster.restart(1)
        tree = try cluster.waitUntilConverged()
        XCTAssertEqual(tree["links/latest"]?.mtime, Self.oldModificationTime + 2, "the start-up scan finds a touch -h")
        XCTAssertEqual(tree.count, 23, "a touch is not a conflict: \(tree.paths)")
    }

    /// A directory replaced by a file, then the file by a directory, each on
    /// one node: every node follows, with no conflict copy.
    func testNameChangingKindOnOneNodeIsFollowedEverywhere() throws {
        let cluster = try makeCluster()
        try cluster.write(0, "swap/a.txt", "a\n")
        try cluster.write(0, "swap/deeper/b.txt", "b\n")
        _ = try cluster.waitUntilConverged()

        try cluster.remove(1, "swap")
        try cluster.write(1, "swap", "now a file\n")
        var tree = try cluster.waitUntilConverged()
        XCTAssertEqual(tree["swap"]?.kind, .file)
        XCTAssertEqual(tree.paths, ["swap"])

        try cluster.remove(2, "swap")
        try cluster.write(2, "swap/inner.txt", "a directory again\n")
        tree = try cluster.waitUntilConverged()
        XCTAssertEqual(tree["swap"]?.kind, .directory)
        XCTAssertEqual(tree.paths, ["swap", "swap/inner.txt"])
        XCTAssertEqual(cluster.readText(0, "swap/inner.txt"), "a directory again\n")
    }

    func testBinaryContentOfEveryByteValueAndRandomBytesArrivesExactly() throws {
        let cluster = try makeCluster()
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        let everyByte = (0..<(256 * 1024)).map { UInt8(truncatingIfNeeded: $0) }
        let randomBytes = random.bytes(3 * (1 << 20) + 17)  // spans chunks, ends mid-chunk
        let oneByte = random.bytes(1)
        try cluster.write(0, "every-byte.bin", everyByte)
        try cluster.write(1, "random.bin", randomBytes)
        try cluster.write(2, "one-byte.bin", oneByte)

        try cluster.waitUntilConverged()

        for node in 0..<cluster.count {
            XCTAssertEqual(cluster.read(node, "every-byte.bin"), everyByte, "every-byte.bin on node \(node + 1)")
            XCTAssertEqual(cluster.read(node, "random.bin"), randomBytes, "random.bin on node \(node + 1)")
            XCTAssertEqual(cluster.read(node, "one-byte.bin"), oneByte, "one-byte.bin on node \(node + 1)")
        }
    }

    /// A sparse file (a VM image: 72 MiB, of which 2 MiB written) stays
    /// sparse on the nodes that fetch it, and reads the same: its zeros
    /// cross the network as `.zeros`, not bytes, and are hashed but not
    /// written. Large enough to be offered, copied early, relayed and
    /// written around the page cache.
    func testASparseFileArrivesSparse() throws {
        let cluster = try makeCluster()
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        let mib = 1 << 20
        let size = 72 * mib
        var content = [UInt8](repeating: 0, count: size)
        let head = random.bytes(mib)
        let middle = random.bytes(mib)
        content.replaceSubrange(0..<mib, with: head)
        content.replaceSubrange((40 * mib)..<(41 * mib), with: middle)
        // Made beside the tree, then moved in whole.
        let staging = cluster.path(0) + "-sparse-staging"
        try cluster.makeDirectory(0, "vm")
        let fd = try FileDescriptor.open(staging, .writeOnly, options: [.create, .truncate])
        try fd.closeAfter {
            try fd.write(all: head, at: 0)
            try fd.write(all: middle, at: Int64(40 * mib))
            try fd.truncate(to: Int64(size))
        }
        defer { unlink(staging) }
        let before = try (0..<cluster.count).map { try cluster.status($0).bytesReceived ?? 0 }
        XCTAssertEqual(rename(staging, cluster.path(0, "vm/disk.img")), 0)

        try cluster.waitUntilConverged(timeout: 60)
        for node in 1..<cluster.count {
            let status = try cluster.status(node)
            let received = (status.bytesReceived ?? 0) - before[node]
            XCTAssertLessThan(received, UInt64(8 * mib), "node \(node + 1) received \(received) bytes of file data")
            XCTAssertGreaterThan(status.bytesZeros ?? 0, UInt64(60 * mib), "node \(node + 1): the rest came as zeros")
        }
        for node in 0..<cluster.count {
            XCTAssertEqual(cluster.read(node, "vm/disk.img"), content, "node \(node + 1)")
            var info = stat()
            XCTAssertEqual(stat(cluster.path(node, "vm/disk.img"), &info), 0)
            XCTAssertLessThan(Int(info.st_blocks) * 512, 8 * mib, "node \(node + 1): allocated \(info.st_blocks * 512) bytes")
        }
    }

    func testEmptyFilesAndAFileTruncatedToEmptySync() throws {
        let cluster = try makeCluster()
        try cluster.write(0, "truncated.txt", "content that will go away\n")
        try cluster.waitUntilConverged()

        try cluster.write(1, "empty-1", "")
        try cluster.write(1, "dir/empty-2.txt", "")
        try cluster.write(2, "dir/deeper/.empty-hidden", "")
        try cluster.write(0, "truncated.txt", "")

        let tree = try cluster.waitUntilConverged()
        for path in ["empty-1", "dir/empty-2.txt", "dir/deeper/.empty-hidden", "truncated.txt"] {
            XCTAssertEqual(tree[path]?.kind, .file, path)
            XCTAssertEqual(tree[path]?.size, 0, path)
        }
    }

    /// Files with the same content (empty files, copies) are distinct files:
    /// each arrives whole, with its own mtime, however the changes were batched.
    func testCopiesOfOneContentWrittenTogetherEachArriveWholeWithTheirOwnModificationTime() throws {
        let cluster = try makeCluster()
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        let content = random.bytes(6 * (1 << 20) + 5)
        let base = EndToEndSyncTests.oldModificationTime
        for i in 0..<4 {
            try cluster.write(0, "copies/copy-\(i).bin", content, mtime: base + Int64(i) * 1_000_000_007)
        }
        for i in 0..<5 {
            try cluster.write(0, "empties/empty-\(i)", "", mtime: base + Int64(i) * 3_000_000_011)
        }

        let tree = try cluster.waitUntilConverged()

        for i in 0..<4 {
            XCTAssertEqual(tree["copies/copy-\(i).bin"]?.mtime, base + Int64(i) * 1_000_000_007, "copy-\(i)")
            for node in 0..<cluster.count {
                XCTAssertEqual(cluster.read(node, "copies/copy-\(i).bin"), content, "copy-\(i) on node\(node + 1)")
            }
        }
        for i in 0..<5 {
            XCTAssertEqual(tree["empties/empty-\(i)"]?.mtime, base + Int64(i) * 3_000_000_011, "empty-\(i)")
        }
    }

    /// `path`'s inode on every node (lstat: a symlink's own).
    private func inodes(_ cluster: TestCluster, _ path: String) throws -> [UInt64?] {
        try (0..<cluster.count).map {
            try FileManager.default.attributesOfItem(atPath: cluster.path($0, path))[.systemFileNumber] as? UInt64
        }
    }
}
