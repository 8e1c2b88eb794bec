import Foundation
import XCTest
@testable import NsyncServer

/// What changes to `.nsyncignore` do to a running node: one that cannot be
/// used is said once, not at every rescan, and the rules in force stay;
/// new rules are new by their bytes; nothing is written into a `.nsync`
/// being removed.
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

    /// Names are bytes here (see EndToEndUnicodeNameTests) and ignore rules
    /// match by Unicode scalars, so a rule in NFC does not ignore an NFD
    /// name. Mending the rule to NFD must put it in force (String == calls
    /// the two texts equal: they are compared as bytes).
    func testARuleRewrittenInAnotherUnicodeNormalizationIsPutInForce() throws {
        let cluster = try makeCluster(label: "ignore-nfd")
        let precomposed = "caf\u{E9}/\n"
        let decomposed = "cafe\u{301}/\n"
        try cluster.write(0, ".nsyncignore", precomposed)
        try cluster.poll("the NFC rules on node2", timeout: 20) {
            cluster.read(1, ".nsyncignore") == Array(precomposed.utf8) ? true : nil
        }
        try cluster.write(0, ".nsyncignore", decomposed)
        try cluster.poll("the NFD rules on node2", timeout: 20) {
            cluster.read(1, ".nsyncignore") == Array(decomposed.utf8) ? true : nil
        }
        try cluster.write(0, "cafe\u{301}/secret.txt", "ignored by the rules in the file\n")
        try cluster.write(0, "marker.txt", "after\n")
        try cluster.poll("marker.txt on node2", timeout: 20) { cluster.readText(1, "marker.txt") == "after\n" ? true : nil }
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline && cluster.read(1, "cafe\u{301}/secret.txt") == nil { usleep(50_000) }
        XCTAssertNil(cluster.read(1, "cafe\u{301}/secret.txt"),
                     "a file in the directory .nsyncignore now names was synced: the NFD rules were not put in force")
        XCTAssertEqual(FileManager.default.contents(atPath: cluster.path(0, ".nsync/ignore-rules")).map { Array($0) },
                       Array(decomposed.utf8), "the kept copy holds the rules of the file")
    }

    /// `rm -rf PATH` emptying `.nsync` (its lock gone) after it removed
    /// `.nsyncignore`: the node must not write into `.nsync` any more (a
    /// file there makes rmdir fail), as the manifest saver and the kept
    /// directory sweep check with stateDirectoryIsIntact().
    func testNoKeptRulesAreWrittenIntoAStateDirectoryBeingRemoved() throws {
        let cluster = try makeCluster(nodes: 2, label: "ignore-rmrf")
        try cluster.write(0, ".nsyncignore", "*.tmp\n")
        let kept = cluster.path(0, ".nsync/ignore-rules")
        try cluster.poll("the kept rules", timeout: 20) {
            FileManager.default.contents(atPath: kept) == Data("*.tmp\n".utf8) ? true : nil
        }
        // What rm -rf has done by the time the node hears of .nsyncignore.
        XCTAssertEqual(unlink(cluster.path(0, ".nsync/lock")), 0)
        XCTAssertEqual(unlink(kept), 0)
        XCTAssertEqual(unlink(cluster.path(0, ".nsyncignore")), 0)
        usleep(1_500_000)
        XCTAssertFalse(FileManager.default.fileExists(atPath: kept), "written into .nsync while it was being removed")
    }
}
