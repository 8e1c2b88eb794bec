import Foundation
import XCTest
@testable import NsyncServer

/// A racy mark (`LocalFile.isRacy`) goes with the next look past the
/// write's tick: the manifest keeps that look, and the stat vouches for the
/// hash again. Most files a program writes and closes are racy at their
/// first look (within two ticks of the write), so a mark that stayed would
/// have every later look hash them and every scan (the 30 s watch-limit
/// rescans among them) look at all of them again.
final class RacyMarkClearsTests: ReconcilerTestCase {
    func testAHashThatIsNoLongerRacyIsVouchedForByTheStatAgain() throws {
        let dir = try SyncScratchDirectory("racy-clears")
        try dir.mkdir("root")
        let root = dir.url("root")
        try dir.write("root/f", "the bytes\n")
        var hashes = 0
        let look = { (known: LocalFile?) -> LocalFile? in
            guard case .found(let local?) = LocalDisk.look(root: root, path: "f", known: known, beforeHashing: { _, _ in
                hashes += 1
            }) else { XCTFail("look"); return nil }
            return local
        }
        let (first, _) = try RacyHashTests.racyLook(root: root, path: "f")
        XCTAssertTrue(reconciler.observed("f", first, index: index).isEmpty)
        commitOutbox()
        XCTAssertEqual(reconciler.manifest["f"]?.version, 1)

        Thread.sleep(forTimeInterval: 0.3)  // long past the write's tick now
        hashes = 0
        let second = try XCTUnwrap(look(reconciler.manifest["f"]?.local ?? nil))
        XCTAssertEqual(hashes, 1, "the racy hash is read again once: right")
        XCTAssertFalse(second.isRacy)
        _ = reconciler.observed("f", second, index: index)
        if reconciler.hasOutbox { commitOutbox() }

        // Nothing changed since: the stat vouches for the hash now.
        let known = try XCTUnwrap(reconciler.manifest["f"]?.local ?? nil)
        XCTAssertFalse(known.isRacy, "the manifest still holds the racy mark of the first look")
        for _ in 0..<3 { _ = try XCTUnwrap(look(reconciler.manifest["f"]?.local ?? nil)) }
        XCTAssertEqual(hashes, 1, "an unchanged file, its write long past, hashed on every look")
        let scanned = try XCTUnwrap(try DirectoryScanner.scan(root: root, ignore: .defaults).entries.first { $0.path == "f" })
        XCTAssertTrue(LocalDisk.unchanged(scanned, known), "every scan looks at it (and hashes it) again")
    }
}
