import Foundation
import XCTest
@testable import NsyncServer

/// A directory renamed into place is scanned for its new names with ignore
/// rules matched against paths from PATH, as everywhere: an anchored rule
/// (`/build/`, top-level build output only) does not hide the renamed
/// directory's own `build/` (whose files were then never announced under
/// their new names while their old names were deleted everywhere).
final class EndToEndRenamedDirectoryIgnoreTests: ClusterTestCase {
    func testARenamedDirectoryWithAFolderNamedLikeAnAnchoredRuleKeepsItsFiles() throws {
        let cluster = try makeCluster(label: "anchored")
        try cluster.write(0, ".nsyncignore", "/build/\n")
        try cluster.write(0, "proj/build/notes.txt", "not top-level build output\n")
        try cluster.poll("proj/build/notes.txt on node2", timeout: 20) {
            cluster.readText(1, "proj/build/notes.txt") != nil ? true : nil
        }
        try cluster.rename(0, "proj", "proj2")
        try cluster.poll("proj2/build/notes.txt on node2", timeout: 20,
                         detail: { "node2 has proj/build/notes.txt: \(cluster.readText(1, "proj/build/notes.txt") != nil)" }) {
            cluster.readText(1, "proj2/build/notes.txt") == "not top-level build output\n" ? true : nil
        }
    }

    /// The same mismatch in the not-synced list: a FIFO the rules ignore by
    /// its full path (`app/run/`) is listed by the subtree scan of a
    /// renamed `app`, and the watcher never reports it gone (ignored).
    func testAnIgnoredFIFOInARenamedDirectoryIsNotListed() throws {
        let cluster = try makeCluster(label: "anchored-fifo")
        try cluster.write(0, ".nsyncignore", "app/run/\n")
        try cluster.makeDirectory(0, "stage/run")
        XCTAssertEqual(mkfifo(cluster.path(0, "stage/run/app.fifo"), 0o600), 0)
        _ = try cluster.runCommand(["wait", cluster.path(0), "--timeout", "20s"], timeout: 25)
        try cluster.rename(0, "stage", "app")
        try cluster.write(0, "marker.txt", "after\n")
        try cluster.poll("marker.txt on node2", timeout: 20) { cluster.readText(1, "marker.txt") != nil ? true : nil }
        _ = try cluster.runCommand(["wait", cluster.path(0), "--timeout", "20s"], timeout: 25)
        usleep(500_000)
        let status = try cluster.status(0)
        XCTAssertNil(status.notSynced?.first(where: { $0.contains("app/run/app.fifo") }), status.rendered())
    }
}
