import Foundation
import XCTest
@testable import NsyncServer

/// `DirectoryScanner.scan(root:subtree:ignore:)`: paths from PATH, ignore rules anchored there.
final class DirectoryScannerSubtreeTests: XCTestCase {
    func testPathsOfADeepSubtreeAreFromTheRoot() throws {
        let dir = try SyncScratchDirectory("subtree")
        try dir.mkdir("x/y/build")
        try dir.write("x/y/build/keep.txt")
        try dir.write("x/y/f")
        XCTAssertEqual(mkfifo(dir.url("x/y/p"), 0o600), 0)
        try dir.write("x/y/ba")
        var raw = Array(dir.url("x/y/").utf8) + [0xff, 0x41, 0]
        let fd = raw.withUnsafeMutableBufferPointer { p in
            p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) { open($0, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644) }
        }
        XCTAssertGreaterThanOrEqual(fd, 0)
        close(fd)
        let scan = try DirectoryScanner.scan(root: dir.path, subtree: "x/y", ignore: IgnoreRules(text: "/build/\n"))
        XCTAssertEqual(scan.entries.map(\.path), ["x/y/ba", "x/y/build", "x/y/build/keep.txt", "x/y/f"])
        XCTAssertEqual(Set(scan.skipped.map(\.path)), ["x/y/p", "x/y/\u{FFFD}A"])
    }
}
