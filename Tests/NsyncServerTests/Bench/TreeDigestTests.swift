import Foundation
import XCTest
@testable import NsyncServer

final class TreeDigestTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = try BenchTestSupport.scratchDirectory()
        for node in ["a", "b"] {
            try FileManager.default.createDirectory(atPath: "\(directory)/\(node)/sub/.nsync", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: "\(directory)/\(node)/.nsync", withIntermediateDirectories: true)
            try BenchFiles.write(BenchFiles.content(seed: 7, count: 5_000), to: "\(directory)/\(node)/sub/file.bin")
            try FileManager.default.createSymbolicLink(atPath: "\(directory)/\(node)/link", withDestinationPath: "sub/file.bin")
        }
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func testEqualTreesHaveNoDifferencesAndTheStateDirectoryIsLeftOut() throws {
        try BenchFiles.write([1, 2, 3], to: "\(directory)/a/.nsync/only-here")
        let a = try TreeDigest(root: "\(directory)/a")
        let b = try TreeDigest(root: "\(directory)/b")
        XCTAssertEqual(a.differences(from: b), [])
        XCTAssertEqual(Set(a.entries.keys), ["sub", "sub/.nsync", "sub/file.bin", "link"], "only the top .nsync is state")
    }

    func testSameSizeOtherContentIsADifference() throws {
        try BenchFiles.write(BenchFiles.content(seed: 8, count: 5_000), to: "\(directory)/b/sub/file.bin")
        let differences = try TreeDigest(root: "\(directory)/b").differences(from: TreeDigest(root: "\(directory)/a"))
        XCTAssertEqual(differences.count, 1)
        XCTAssertTrue(differences[0].hasPrefix("sub/file.bin: file of 5000 bytes"), differences[0])
    }

    func testMissingAndExtraPathsAreDifferences() throws {
        try FileManager.default.removeItem(atPath: "\(directory)/b/link")
        try BenchFiles.write([0], to: "\(directory)/b/extra")
        let differences = try TreeDigest(root: "\(directory)/b").differences(from: TreeDigest(root: "\(directory)/a"))
        XCTAssertEqual(differences, ["extra: file of 1 bytes, sha256 6e340b9cffb3, expected nothing",
                                     "link: missing, expected symlink to sub/file.bin"])
    }

    func testSubtreeDigestHoldsOnlyThatSubtree() throws {
        let digest = try TreeDigest(root: "\(directory)/a", subtree: "sub")
        XCTAssertEqual(Set(digest.entries.keys), ["sub", "sub/.nsync", "sub/file.bin"])
        XCTAssertEqual(try TreeDigest(root: "\(directory)/a", subtree: "absent").entries.count, 0)
    }

    func testContentIsDeterministicPerSeed() {
        XCTAssertEqual(BenchFiles.content(seed: 1, count: 100), BenchFiles.content(seed: 1, count: 100))
        XCTAssertNotEqual(BenchFiles.content(seed: 1, count: 100), BenchFiles.content(seed: 2, count: 100))
        XCTAssertEqual(BenchFiles.content(seed: 1, count: 13).count, 13)
        XCTAssertEqual(Array(BenchFiles.content(seed: 1, count: 100).prefix(13)), BenchFiles.content(seed: 1, count: 13))
    }
}
