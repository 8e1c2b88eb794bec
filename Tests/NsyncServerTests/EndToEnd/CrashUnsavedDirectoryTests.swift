import Foundation
import XCTest
@testable import NsyncServer

/// A folder a node made for the cluster in the second before a kill -9
/// (its manifest, saved about once a second, does not know it yet) and
/// that is renamed or removed elsewhere while the node is down stays gone
/// once the node is back. Found by probing: the restarted node caught up
/// with the deletion before its start-up look reached the folder, took it
/// for a folder its user had made and announced it: back, empty, on every
/// node (3 to 7 of these 8 rounds; 0 of 64 rounds of a probe whose start-up
/// look was quick, as it is in a small tree).
final class EndToEndCrashUnsavedDirectoryTests: ClusterTestCase {
    func testAFolderInstalledJustBeforeAKillAndRemovedOrRenamedWhileDownStaysGone() throws {
        let cluster = try makeCluster()
        // Edited on node3 while it is down: its start-up look hashes all of
        // it, and the look at the folder, in the same batch, waits for
        // that, while Raft catches up. The edit is the user's and wins.
        let bigSize = 256 << 20
        try cluster.write(0, "big.bin", size: bigSize) { _, count in [UInt8](repeating: 7, count: count) }
        try cluster.waitUntilConverged(timeout: 60)
        for round in 0..<8 {
            let base = "r\(round)"
            for d in 1...3 { for f in 1...2 { try cluster.write(0, "\(base)/d\(d)/f\(f)", "\(round) \(d) \(f)\n") } }
            // Killed the moment the folders are in: before its next manifest save.
            try cluster.poll("round \(round): the folders on node2 and node3", timeout: 30) {
                (1...2).allSatisfy { cluster.readText($0, "\(base)/d3/f2") != nil && cluster.readText($0, "\(base)/d1/f2") != nil }
                    ? true : nil
            }
            try cluster.kill(2, signal: SIGKILL)
            let removing = round % 2 == 1
            if removing { try cluster.remove(1, "\(base)/d3") } else { try cluster.rename(1, "\(base)/d3", "\(base)/m3") }
            try cluster.poll("round \(round): node1 to see \(base)/d3 go", timeout: 30) {
                cluster.readText(0, "\(base)/d3/f1") == nil && (removing || cluster.readText(0, "\(base)/m3/f1") != nil)
                    ? true : nil
            }
            let edit = try editOneByte(cluster.path(2, "big.bin"), at: UInt64(round) * 4096, to: UInt8(round + 100))
            try cluster.restart(2)
            let tree = try cluster.waitUntilConverged(timeout: 60)

            let d3 = tree.paths.filter { $0 == "\(base)/d3" || $0.hasPrefix("\(base)/d3/") }
            XCTAssertEqual(d3, [], "round \(round): \(base)/d3 was \(removing ? "removed" : "renamed") while node3 was down")
            let expected = ["\(base)/d1", "\(base)/d2"] + (removing ? [] : ["\(base)/m3"])
            XCTAssertEqual(tree.paths.filter { $0.hasPrefix(base + "/") && !$0.dropFirst(base.count + 1).contains("/") },
                           expected, "round \(round)")
            XCTAssertEqual(tree["big.bin"]?.hash, edit, "round \(round): node3's edit made while it was down is everywhere")
        }
    }

    /// Writes `byte` at `offset` of the file at `path` (its stat changes)
    /// and returns the file's SHA-256, hex.
    private func editOneByte(_ path: String, at offset: UInt64, to byte: UInt8) throws -> String {
        guard let handle = FileHandle(forUpdatingAtPath: path) else { throw ClusterError("cannot open \(path)") }
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: [byte])
        try handle.close()
        let hash = try ClusterTree.hashFile(path)
        return try hash ?? { throw ClusterError("cannot hash \(path)") }()
    }
}
