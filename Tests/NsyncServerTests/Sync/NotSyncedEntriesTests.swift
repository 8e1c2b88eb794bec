import XCTest
@testable import NsyncServer

final class NotSyncedEntriesTests: XCTestCase {
    private func fifo(_ path: String) -> SkippedEntry { SkippedEntry(path: path, reason: .specialFile) }

    func testAnEntryIsNewOnceUntilItGoes() {
        var entries = NotSyncedEntries()
        XCTAssertTrue(entries.insert(fifo("a")))
        XCTAssertFalse(entries.insert(fifo("a")))
        XCTAssertFalse(entries.insert(SkippedEntry(path: "a", reason: .invalidName)), "the path was noted")
        XCTAssertEqual(entries.entries["a"]?.reason, .invalidName, "and now says why it is not synced now")
        entries.remove("a")
        XCTAssertTrue(entries.isEmpty)
        XCTAssertTrue(entries.insert(fifo("a")))
    }

    func testRemovingATreeRemovesWhatIsBelowItAndNotItsNeighbours() {
        var entries = NotSyncedEntries()
        for path in ["d", "d/x", "d/e/y", "d2/z", "dz"] { entries.insert(fifo(path)) }
        entries.removeTree("d")
        XCTAssertEqual(Set(entries.entries.keys), ["d2/z", "dz"])
    }

    func testAScanReplacesWhatItCoversAndNamesOnlyWhatIsNew() {
        var entries = NotSyncedEntries()
        entries.insert(fifo("sub/old"))
        entries.insert(fifo("sub/kept"))
        entries.insert(fifo("other"))
        let new = entries.replace(below: "sub", with: [fifo("sub/kept"), fifo("sub/new")])
        XCTAssertEqual(new, [fifo("sub/new")])
        XCTAssertEqual(Set(entries.entries.keys), ["sub/kept", "sub/new", "other"])

        let whole = entries.replace(below: "", with: [fifo("other"), SkippedEntry(path: "sub/kept", reason: .invalidName)])
        XCTAssertEqual(whole, [SkippedEntry(path: "sub/kept", reason: .invalidName)], "a new reason is news")
        XCTAssertEqual(Set(entries.entries.keys), ["other", "sub/kept"])
    }

    func testPastTheLimitEntriesAreCountedAsALowerBound() {
        var entries = NotSyncedEntries()
        let found = (0..<(NotSyncedEntries.limit + 5)).map { fifo("f\($0)") }
        let new = entries.replace(below: "", with: found)
        XCTAssertEqual(new.count, found.count, "each is news the first time")
        XCTAssertEqual(entries.count, NotSyncedEntries.limit)
        XCTAssertTrue(entries.isTruncated)
        XCTAssertEqual(entries.first(3).map(\.path), ["f0", "f1", "f10"])
        _ = entries.replace(below: "", with: [fifo("only")])
        XCTAssertFalse(entries.isTruncated, "a whole scan that finds fewer counts exactly again")
        XCTAssertEqual(entries.count, 1)
    }
}
