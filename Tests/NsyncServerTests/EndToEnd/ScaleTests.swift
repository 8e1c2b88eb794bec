import Foundation
import XCTest
@testable import NsyncServer

/// Many small files and one large one: the two ends DESIGN.md budgets for.
/// Each prints how long the cluster took to converge.
final class EndToEndScaleTests: ClusterTestCase {
    func testTenThousandSmallFilesInHundredDirectoriesConverge() throws {
        let cluster = try makeCluster()
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        let written = Date()
        var sizes = 0
        for d in 0..<100 {
            try cluster.makeDirectory(0, String(format: "dir-%02d", d))
            for f in 0..<100 {
                // 0 to 2 KiB: some empty, most a few hundred bytes.
                let bytes = random.bytes(Int(random.next() % 2049))
                sizes += bytes.count
                try cluster.write(0, String(format: "dir-%02d/file-%03d.dat", d, f), bytes)
            }
        }
        let writing = Date().timeIntervalSince(written)

        let tree = try cluster.waitUntilConverged(timeout: 60)
        let converged = Date().timeIntervalSince(written)

        XCTAssertEqual(tree.count, 10_100)
        XCTAssertEqual(tree.paths.filter { tree[$0]?.kind == .file }.count, 10_000)
        print(String(format: "10,000 files (%.1f MiB) in 100 dirs: written in %.1f s, converged on 3 nodes %.1f s after the first write",
                     Double(sizes) / 1_048_576, writing, converged))
    }

    /// A tree made elsewhere and moved in at once (an unpacked archive, a
    /// build's output) is listed by the watcher a slice per loop turn: the
    /// 10,000 files here take several, and every one of them arrives.
    func testATreeOfTenThousandFilesMovedInFromOutsideConverges() throws {
        let cluster = try makeCluster()
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        let outside = cluster.directory + "/outside"
        for d in 0..<50 {
            let folder = String(format: "%@/unpacked/pkg-%02d/lib", outside, d)
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for f in 0..<200 {
                let bytes = random.bytes(Int(random.next() % 1025))
                XCTAssertTrue(FileManager.default.createFile(atPath: String(format: "%@/f-%03d.js", folder, f), contents: Data(bytes)))
            }
        }
        try cluster.waitUntilConverged()
        let moved = Date()
        XCTAssertEqual(rename(outside + "/unpacked", cluster.path(0, "unpacked")), 0, String(cString: strerror(errno)))

        let tree = try cluster.waitUntilConverged(timeout: 60)
        XCTAssertEqual(tree.paths.filter { tree[$0]?.kind == .file }.count, 10_000)
        XCTAssertEqual(tree.count, 1 + 50 * 2 + 10_000)
        print(String(format: "10,000 files moved in: converged on 3 nodes %.1f s after the move", Date().timeIntervalSince(moved)))
    }

    func testFileOf256MiBConvergesWithIdenticalContent() throws {
        let cluster = try makeCluster()
        var random = ClusterRandom(seed: ClusterRandom.seed(for: name))
        let size = 256 << 20
        // One random MiB, stamped with its index, so every MiB differs and a
        // chunk written at the wrong offset changes the hash.
        let block = random.bytes(1 << 20)
        let hasher = SHA256()
        let written = Date()
        try cluster.write(0, "big/disk.img", size: size) { offset, count in
            var piece = Array(block[0..<count])
            withUnsafeBytes(of: UInt64(offset).bigEndian) { piece.replaceSubrange(0..<8, with: $0) }
            hasher.update(piece)
            return piece
        }
        let expected = SHA256.hex(hasher.finalize())
        let writing = Date().timeIntervalSince(written)

        let tree = try cluster.waitUntilConverged(timeout: 60)
        let converged = Date().timeIntervalSince(written)

        XCTAssertEqual(tree["big/disk.img"]?.size, UInt64(size))
        for node in 0..<cluster.count {
            XCTAssertEqual(try cluster.tree(node)["big/disk.img"]?.hash, expected, "on node\(node + 1)")
        }
        print(String(format: "256 MiB file: written in %.1f s, converged on 3 nodes %.1f s after the write started",
                     writing, converged))
    }
}
