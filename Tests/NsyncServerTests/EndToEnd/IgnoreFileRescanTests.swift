import Foundation
import XCTest
@testable import NsyncServer

/// What a `.nsyncignore` that cannot be used does to a running node: said
/// once, not at every rescan; the rules in force stay.
final class EndToEndIgnoreFileRescanTests: ClusterTestCase {
    /// A FIFO renamed onto `.nsyncignore`: the manifest still says "a file",
    /// so every rescan finds it gone and looks at it again; the error is
    /// recorded once.
    func testAFIFOOnTheIgnoreFileIsReportedOnceNotAtEveryRescan() throws {
        let cluster = try makeCluster(extraArguments: ["--rescan-interval", "1"])
        try cluster.write(0, ".nsyncignore", "*.tmp\n")
        try cluster.waitUntilConverged()
        XCTAssertEqual(mkfifo(cluster.path(0, "staging.fifo"), 0o600), 0)
        XCTAssertEqual(rename(cluster.path(0, "staging.fifo"), cluster.path(0, ".nsyncignore")), 0)
        func errors() throws -> Int {
            try cluster.status(0).recentErrors.filter { $0.contains(".nsyncignore is not used") }.count
        }
        try cluster.poll("the first error", timeout: 15) { try errors() >= 1 ? true : nil }
        let scansBefore = cluster.log(0).components(separatedBy: "scan done (periodic").count
        try cluster.poll("four more periodic scans", timeout: 20) {
            cluster.log(0).components(separatedBy: "scan done (periodic").count >= scansBefore + 4 ? true : nil
        }
        let all = try cluster.status(0).recentErrors
        XCTAssertEqual(try errors(), 1, all.joined(separator: "\n"))
    }

    /// `.nsyncignore` made a symlink to a file in PATH holding the same
    /// rules: not followed (an error), and the rules in force stay, so a
    /// file written in a directory they ignore is not synced (falling back
    /// to the defaults synced it).
    func testRulesStayWhenTheIgnoreFileBecomesASymlinkToTheSameRules() throws {
        let cluster = try makeCluster()
        try cluster.write(0, ".nsyncignore", "secret/\n")
        try cluster.write(0, "rules.txt", "secret/\n")
        try cluster.write(0, "secret/a.txt", "private\n")
        try cluster.poll("rules.txt on node2", timeout: 20) { cluster.readText(1, "rules.txt") == "secret/\n" ? true : nil }
        XCTAssertNil(cluster.readText(1, "secret/a.txt"))
        XCTAssertEqual(unlink(cluster.path(0, ".nsyncignore")), 0)
        XCTAssertEqual(symlink("rules.txt", cluster.path(0, ".nsyncignore")), 0)
        try cluster.poll("the error", timeout: 15) {
            try cluster.status(0).recentErrors.contains { $0.contains(".nsyncignore is not used") } ? true : nil
        }
        try cluster.write(0, "secret/b.txt", "private too\n")
        try cluster.write(0, "marker.txt", "after\n")
        try cluster.poll("marker on node2", timeout: 20) { cluster.readText(1, "marker.txt") == "after\n" ? true : nil }
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline && cluster.readText(1, "secret/b.txt") == nil { usleep(50_000) }
        XCTAssertNil(cluster.readText(1, "secret/b.txt"), "a file the rules in force ignored was synced")
    }
}
