import Foundation
import XCTest
@testable import NsyncServer

/// Files installed within the second before a manifest save are known
/// from the install journal, by their path. A folder of them renamed (or
/// removed) by the user and the node killed before the save: at restart
/// their paths held nothing, the journal entries were dropped as never
/// installed, and the node fetched them back, undoing the user's rename
/// on every node (found by probing: `mv doc docA`, kill -9 50 ms later).
/// Entries the index says this node held are known again, so the start-up
/// scan finds them gone and announces it.
final class EndToEndCrashAfterRenameTests: ClusterTestCase {
    func testAFolderJustReceivedThenRenamedBeforeACrashStaysRenamed() throws {
        let cluster = try makeCluster()
        for i in 1...200 { try cluster.write(0, "doc/sub\(i % 10)/f\(i).txt", "file \(i)\n") }
        try cluster.waitUntilConverged()
        try cluster.rename(1, "doc", "docA")
        try cluster.kill(1, signal: SIGKILL)
        try cluster.restart(1)
        let tree = try cluster.waitUntilConverged(timeout: 60)
        let files = tree.paths.filter { $0.hasSuffix(".txt") }
        XCTAssertEqual(files.count, 200)
        XCTAssertEqual(files.filter { $0.hasPrefix("docA/") }.count, 200, "the rename stands on every node: \(files.filter { !$0.hasPrefix("docA/") }.prefix(5))")
        XCTAssertEqual(tree.paths.filter { $0 == "doc" || $0.hasPrefix("doc/") }, [], "and its folders")
    }
}
