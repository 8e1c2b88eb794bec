import Foundation
import XCTest
@testable import NsyncServer

/// A node that stops (cleanly or not) and comes back converges through the
/// same loop as everything else: what changed meanwhile, on either side, syncs.
final class EndToEndRestartTests: ClusterTestCase {
    func testNodeKilledWhileOthersChangeFilesCatchesUpAfterRestart() throws {
        try checkNodeKilledWhileOthersChangeFilesCatchesUp(killAtOnce: false)
    }

    /// The same, killed as soon as it has the files: before its periodic
    /// save of what it holds (.nsync/manifest) has run.
    func testNodeKilledRightAfterReceivingFilesCatchesUpAfterRestart() throws {
        try checkNodeKilledWhileOthersChangeFilesCatchesUp(killAtOnce: true)
    }

    private func checkNodeKilledWhileOthersChangeFilesCatchesUp(killAtOnce: Bool) throws {
        let cluster = try makeCluster()
        try cluster.write(0, "before.txt", "before the crash\n")
        try cluster.write(0, "edited.txt", "old\n")
        try cluster.write(0, "removed.txt", "will be removed\n")
        let converged = try cluster.waitUntilConverged()
        if !killAtOnce {
            // Not "saved after the convergence": the save may well have run
            // before waitUntilConverged returned, and the manifest is saved
            // only when it changed, so no later one comes.
            try eventually(cluster, "node3's saved .nsync/manifest to record the files it holds") {
                guard let bytes = FileManager.default.contents(atPath: cluster.path(2, ".nsync/manifest")),
                      let manifest = try? Manifest.decode(Array(bytes)) else { return false }
                return converged.paths.allSatisfy { path in
                    guard let entry = manifest[path], entry.version > 0, let local = entry.local else { return false }
                    return SHA256.hex(local.hash) == converged[path]?.hash
                }
            }
        }

        try cluster.kill(2, signal: SIGKILL)
        try cluster.write(0, "during.txt", "while node3 was down\n")
        try cluster.write(1, "edited.txt", "new\n")
        try cluster.remove(0, "removed.txt")
        try cluster.waitUntilConverged()  // the two running nodes
        try cluster.restart(2)

        let tree = try cluster.waitUntilConverged(timeout: 15)
        XCTAssertEqual(tree.paths, ["before.txt", "during.txt", "edited.txt"])
        XCTAssertEqual(cluster.readText(2, "edited.txt"), "new\n")
    }

    /// A restart replays the node's Raft log since its last snapshot: the
    /// index passes again through a folder made, deleted and forgotten
    /// (every node held the deletion). The manifest no longer mentions it,
    /// so acting on the replay made the folders again, and every node then
    /// had them back (old code: proj and proj/src on all three nodes).
    func testARestartDoesNotBringBackAFolderDeletedBeforeIt() throws {
        let cluster = try makeCluster()
        try cluster.write(0, "proj/src/a.c", "int main;\n")
        try cluster.write(0, "kept.txt", "stays\n")
        try cluster.waitUntilConverged()
        try cluster.remove(0, "proj")
        try cluster.waitUntilConverged()
        try eventually(cluster, "the deletions forgotten (every node held them)") {
            (0..<cluster.count).allSatisfy { (try? cluster.status($0))?.files == 1 }
        }
        try cluster.restart(1)
        try cluster.waitForLeader()
        try cluster.write(0, "after.txt", "after the restart\n")
        try cluster.waitUntilConverged(timeout: 15)
        usleep(1_500_000)  // a look at a folder made again would announce it by now
        let tree = try cluster.waitUntilConverged(timeout: 15)
        XCTAssertEqual(tree.paths, ["after.txt", "kept.txt"], "the restart brought back what was deleted")
        XCTAssertTrue(cluster.log(1).contains("replayed the Raft log up to"), cluster.log(1).suffix(3000).description)
    }

    func testChangesMadeWhileANodeWasStoppedAreAnnouncedWhenItStartsAgain() throws {
        let cluster = try makeCluster()
        try cluster.write(0, "shared.txt", "v1\n")
        try cluster.write(0, "gone-while-down.txt", "here\n")
        try cluster.waitUntilConverged()

        try cluster.kill(1, signal: SIGTERM)
        try cluster.write(1, "shared.txt", "v2, written while node2 was stopped\n")
        try cluster.write(1, "offline/new.txt", "made offline\n")
        try cluster.remove(1, "gone-while-down.txt")
        try cluster.restart(1)
        try cluster.waitForLeader()

        let tree = try cluster.waitUntilConverged()
        XCTAssertEqual(tree.paths, ["offline", "offline/new.txt", "shared.txt"])
        XCTAssertEqual(cluster.readText(0, "shared.txt"), "v2, written while node2 was stopped\n")
    }
}
