import Foundation
import XCTest
@testable import NsyncServer

/// Permission bits and the sticky bit sync; set-user-ID and set-group-ID
/// never do: files are installed as the daemon's user (root here, as in
/// many deployments), so a user's setuid program on one node would be
/// root's on the others.
final class EndToEndModeTests: ClusterTestCase {
    func testSetuidAndSetgidBitsStayOnTheirNodeWhileTheStickyBitSyncs() throws {
        let cluster = try makeCluster()
        try cluster.waitUntilConverged()
        try cluster.write(0, "bin/tool", "#!/bin/sh\nid\n", mode: 0o755)
        try cluster.write(0, "bin/group-tool", "#!/bin/sh\nid -g\n", mode: 0o755)
        try cluster.makeDirectory(0, "shared", mode: 0o777)
        try cluster.makeDirectory(0, "team", mode: 0o775)
        // Set after creation: a creation mode goes through the umask.
        for (path, mode) in [("bin/tool", 0o4755), ("bin/group-tool", 0o2755), ("shared", 0o1777), ("team", 0o2775)] {
            XCTAssertEqual(chmod(cluster.path(0, path), mode_t(mode)), 0, path)
        }
        try cluster.write(0, "marker.txt", "after the modes\n")

        let wanted: [String: UInt32] = ["bin/tool": 0o755, "bin/group-tool": 0o755, "shared": 0o1777, "team": 0o775]
        for node in 1..<cluster.count {
            try cluster.poll("the modes on node\(node + 1)", timeout: 20,
                             detail: { (try? cluster.tree(node, hashing: false).paths.joined(separator: " ")) ?? "" }) { () -> Bool? in
                let tree = try cluster.tree(node, hashing: false)
                guard tree["marker.txt"] != nil else { return nil }
                return wanted.allSatisfy { tree[$0.key]?.mode == $0.value } ? true : nil
            }
        }
        // The origin's own files keep what their owner gave them, and are not
        // announced again and again for the bits that do not sync.
        let origin = try cluster.tree(0, hashing: false)
        XCTAssertEqual(origin["bin/tool"]?.mode, 0o4755)
        XCTAssertEqual(origin["team"]?.mode, 0o2775)
        _ = try cluster.runCommand(["wait", cluster.path(0), "--timeout", "20s"], timeout: 25)
        let settled = try cluster.status(0).commitIndex
        usleep(1_500_000)
        XCTAssertEqual(try cluster.status(0).commitIndex, settled, "nothing more announced")
        XCTAssertEqual(try cluster.status(0).pendingAnnouncements, 0)

        // A mode change of the sticky directory elsewhere reaches the origin;
        // the origin's setgid directory keeps its bit when its mode syncs.
        XCTAssertEqual(chmod(cluster.path(1, "shared"), 0o1770), 0)
        XCTAssertEqual(chmod(cluster.path(1, "team"), 0o770), 0)
        try cluster.poll("the modes set on node2 reaching node1", timeout: 20) { () -> Bool? in
            let tree = try cluster.tree(0, hashing: false)
            return tree["shared"]?.mode == 0o1770 && tree["team"]?.mode == 0o2770 ? true : nil
        }
    }
}
