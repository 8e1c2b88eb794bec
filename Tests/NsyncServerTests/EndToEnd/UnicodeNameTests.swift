import Foundation
import XCTest

/// File names are bytes on Linux: names that Unicode calls equivalent are
/// still different files, and a sync must neither merge nor rename them.
final class EndToEndUnicodeNameTests: ClusterTestCase {
    func testNamesDifferingOnlyInUnicodeNormalizationStayTwoFiles() throws {
        let cluster = try makeCluster()
        // "café" with U+00E9, and with "e" + U+0301 (what macOS writes).
        let precomposed = "caf\u{E9}.txt"
        let decomposed = "cafe\u{301}.txt"
        try cluster.write(0, precomposed, "precomposed\n")
        try cluster.write(0, decomposed, "decomposed\n")
        try cluster.write(1, "dir-\u{C5}/a", "A with ring, precomposed\n")
        try cluster.write(1, "dir-A\u{30A}/a", "A with ring, decomposed\n")

        let tree = try cluster.waitUntilConverged(timeout: 10)

        XCTAssertEqual(tree.count, 6, "two files and two directories holding one file each: \(tree.paths)")
        for node in 0..<cluster.count {
            XCTAssertEqual(cluster.readText(node, precomposed), "precomposed\n", "on node\(node + 1)")
            XCTAssertEqual(cluster.readText(node, decomposed), "decomposed\n", "on node\(node + 1)")
            XCTAssertEqual(cluster.readText(node, "dir-\u{C5}/a"), "A with ring, precomposed\n", "on node\(node + 1)")
            XCTAssertEqual(cluster.readText(node, "dir-A\u{30A}/a"), "A with ring, decomposed\n", "on node\(node + 1)")
        }
    }
}
