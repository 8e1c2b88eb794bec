import Foundation
import XCTest
@testable import NsyncServer

/// A folder renamed twice in a row (`mv a tmp && mv tmp c`, or a swap of
/// two folders' names through a third) reaches the others as moves from
/// name to name, each applied before the next one's deletion is judged:
/// no copy is left under the middle name. Found by probing: the others
/// kept `tmp` with all its files, for good (its deletion failed on
/// "Directory not empty" once a minute).
final class EndToEndDirectoryRenameChainTests: ClusterTestCase {
    func testAFolderRenamedTwiceInARowLeavesNothingUnderTheMiddleName() throws {
        let cluster = try makeCluster()
        for i in 1...3 { try cluster.write(0, "sw/a/f\(i)", "file \(i)\n") }
        try cluster.waitUntilConverged()
        var names = ("a", "c")
        for round in 1...8 {
            // As two `mv` commands do: a few milliseconds apart.
            try cluster.rename(1, "sw/\(names.0)", "sw/tmp")
            Thread.sleep(forTimeInterval: Self.gaps[round % Self.gaps.count])
            try cluster.rename(1, "sw/tmp", "sw/\(names.1)")
            try arrived(cluster, "sw/\(names.1)/f1", "file 1\n", round: round)
            let tree = try cluster.waitUntilConverged()
            XCTAssertEqual(tree.paths.filter { $0.hasPrefix("sw") },
                           ["sw", "sw/\(names.1)"] + (1...3).map { "sw/\(names.1)/f\($0)" }, "round \(round)")
            names = (names.1, names.0)
        }
    }

    /// Between two renames: within one read of the watcher's events, and
    /// after the first was handled (a subtree scan of it under way or done).
    static let gaps: [TimeInterval] = [0, 0.002, 0.005, 0.02]

    /// Waits until node1 and node3 have `path` with `text`: the renames reached them.
    private func arrived(_ cluster: TestCluster, _ path: String, _ text: String, round: Int) throws {
        for node in [0, 2] {
            try cluster.poll("round \(round): \(path) on node\(node + 1)", timeout: 20, detail: { cluster.logTail(node) }) {
                cluster.readText(node, path) == text ? true : nil
            }
        }
    }

    func testTwoFoldersSwappedThroughAThirdNameLeaveNothingUnderIt() throws {
        let cluster = try makeCluster()
        for i in 1...3 {
            try cluster.write(0, "sw/a/f\(i)", "a \(i)\n")
            try cluster.write(0, "sw/b/f\(i)", "b \(i)\n")
        }
        try cluster.waitUntilConverged()
        for round in 1...8 {
            try cluster.rename(1, "sw/a", "sw/tmp")
            Thread.sleep(forTimeInterval: Self.gaps[round % Self.gaps.count])
            try cluster.rename(1, "sw/b", "sw/a")
            Thread.sleep(forTimeInterval: Self.gaps[(round + 1) % Self.gaps.count])
            try cluster.rename(1, "sw/tmp", "sw/b")
            let first = round % 2 == 1 ? "b" : "a"
            try arrived(cluster, "sw/a/f1", "\(first) 1\n", round: round)
            let tree = try cluster.waitUntilConverged()
            XCTAssertFalse(tree.paths.contains("sw/tmp"), "round \(round): \(tree.paths)")
        }
    }
}
