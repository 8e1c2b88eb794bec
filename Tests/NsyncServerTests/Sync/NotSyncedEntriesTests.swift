import XCTest
@testable import NsyncServer

final class NotSyncedEntriesTests: XCTestCase {
    private func fifo(_ path: String) -> SkippedEntry { SkippedEntry(path: path, reason: .specialFile) }
    private func unreadable(_ path: String) -> SkippedEntry {
        SkippedEntry(path: path, reason: .unreadable(SystemError(errno: EACCES, operation: "opendir", path: path)))
    }
    private func paths(_ entries: NotSyncedEntries) -> Set<String> { Set(entries.first(.max).map(\.path)) }

    func testAnEntryIsNewOnceUntilItGoes() {
        var entries = NotSyncedEntries()
        XCTAssertTrue(entries.insert(fifo("a")))
        XCTAssertFalse(entries.insert(fifo("a")))
        XCTAssertTrue(entries.insert(SkippedEntry(path: "a", reason: .invalidName)), "a new reason is news")
        XCTAssertEqual(entries["a"]?.reason, .invalidName)
        entries.remove("a")
        XCTAssertTrue(entries.isEmpty)
        XCTAssertTrue(entries.insert(fifo("a")))
    }

    func testRemovingADirectoryRemovesWhatIsBelowItAndNotItsNeighbours() {
        var entries = NotSyncedEntries()
        for path in ["d", "d/x", "d/e/y", "d2/z", "dz", "d/e/f/g"] { entries.insert(fifo(path)) }
        entries.remove("d/e/f/g")
        entries.remove("d/e", isDirectory: true)
        XCTAssertEqual(paths(entries), ["d", "d/x", "d2/z", "dz"])
        entries.remove("d", isDirectory: true)
        XCTAssertEqual(paths(entries), ["d2/z", "dz"])
        // Counts below each directory followed every removal: "d" again is a no-op,
        // and new entries under it are found by its next removal.
        entries.remove("d", isDirectory: true)
        entries.insert(fifo("d/new"))
        entries.remove("d", isDirectory: true)
        XCTAssertEqual(paths(entries), ["d2/z", "dz"])
        entries.remove("d2", isDirectory: false)
        XCTAssertEqual(paths(entries), ["d2/z", "dz"], "a file named d2 is not the folder")
    }

    func testALookClearsAnEntryButNotAnUnreadableDirectoryItCanStat() {
        var entries = NotSyncedEntries()
        entries.insert(fifo("was-a-fifo"))
        entries.insert(unreadable("private"))
        XCTAssertFalse(entries.looked("was-a-fifo", isDirectory: false))
        XCTAssertTrue(entries.looked("private", isDirectory: true), "stat works on an unlistable directory")
        XCTAssertEqual(paths(entries), ["private"])
        XCTAssertFalse(entries.looked("private", isDirectory: false))
        XCTAssertTrue(entries.isEmpty, "replaced by a file")
    }

    func testAScanReplacesWhatItCoversAndNamesOnlyWhatIsNew() {
        var entries = NotSyncedEntries()
        entries.insert(fifo("sub/old"))
        entries.insert(fifo("sub/kept"))
        entries.insert(fifo("other"))
        let sub = entries.scanBegins()
        let new = entries.replace(below: "sub", with: [fifo("sub/kept"), fifo("sub/new")], began: sub)
        XCTAssertEqual(new, [fifo("sub/new")])
        XCTAssertEqual(paths(entries), ["sub/kept", "sub/new", "other"])

        let whole = entries.scanBegins()
        let changed = entries.replace(below: "", with: [fifo("other"), SkippedEntry(path: "sub/kept", reason: .invalidName)],
                                      began: whole)
        XCTAssertEqual(changed, [SkippedEntry(path: "sub/kept", reason: .invalidName)], "a new reason is news")
        XCTAssertEqual(paths(entries), ["other", "sub/kept"])
    }

    /// Noted before the scan began (even within the same loop turn): the
    /// walk decides; noted after: kept against the walk.
    func testWhatWasNotedAfterAScanBeganWinsOverItsWalk() {
        var entries = NotSyncedEntries()
        entries.insert(fifo("before"))
        let began = entries.scanBegins()
        entries.insert(fifo("arrived"))
        _ = entries.replace(below: "", with: [fifo("still")], began: began)
        XCTAssertEqual(paths(entries), ["arrived", "still"])
    }

    func testAPathIsLoggedAtInfoOnceInAWhile() {
        var entries = NotSyncedEntries()
        XCTAssertTrue(entries.logDue("sock", now: 1_000))
        XCTAssertFalse(entries.logDue("sock", now: 2_000))
        XCTAssertTrue(entries.logDue("other", now: 2_000))
        XCTAssertTrue(entries.logDue("sock", now: 1_000 + NotSyncedEntries.relogInterval))
    }

    func testPastTheLimitEntriesAreCountedAsALowerBound() {
        var entries = NotSyncedEntries()
        let found = (0..<(NotSyncedEntries.limit + 5)).map { fifo("f\($0)") }
        let new = entries.replace(below: "", with: found, began: entries.scanBegins())
        XCTAssertEqual(new.count, found.count, "each is news the first time")
        XCTAssertEqual(entries.count, NotSyncedEntries.limit)
        XCTAssertTrue(entries.isTruncated)
        XCTAssertEqual(entries.first(3).map(\.path), ["f0", "f1", "f10"])
        _ = entries.replace(below: "", with: [fifo("only")], began: entries.scanBegins())
        XCTAssertFalse(entries.isTruncated, "a whole scan that finds fewer counts exactly again")
        XCTAssertEqual(entries.count, 1)
    }
}
