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
        XCTAssertTrue(entries.insert(fifo("a"), now: 1))
        XCTAssertFalse(entries.insert(fifo("a"), now: 2))
        XCTAssertTrue(entries.insert(SkippedEntry(path: "a", reason: .invalidName), now: 3), "a new reason is news")
        XCTAssertEqual(entries["a"]?.reason, .invalidName)
        entries.remove("a", now: 4)
        XCTAssertTrue(entries.isEmpty)
        XCTAssertTrue(entries.insert(fifo("a"), now: 5))
    }

    func testRemovingADirectoryRemovesWhatIsBelowItAndNotItsNeighbours() {
        var entries = NotSyncedEntries()
        for path in ["d", "d/x", "d/e/y", "d2/z", "dz"] { entries.insert(fifo(path), now: 1) }
        entries.remove("d", isDirectory: true, now: 2)
        XCTAssertEqual(paths(entries), ["d2/z", "dz"])
    }

    func testALookClearsAnEntryButNotAnUnreadableDirectoryItCanStat() {
        var entries = NotSyncedEntries()
        entries.insert(fifo("was-a-fifo"), now: 1)
        entries.insert(unreadable("private"), now: 1)
        entries.looked("was-a-fifo", isDirectory: false)
        entries.looked("private", isDirectory: true)
        XCTAssertEqual(paths(entries), ["private"], "stat works on an unlistable directory: still unreadable")
        entries.looked("private", isDirectory: false)
        XCTAssertTrue(entries.isEmpty, "replaced by a file")
    }

    func testAScanReplacesWhatItCoversAndNamesOnlyWhatIsNew() {
        var entries = NotSyncedEntries()
        entries.insert(fifo("sub/old"), now: 1)
        entries.insert(fifo("sub/kept"), now: 1)
        entries.insert(fifo("other"), now: 1)
        let new = entries.replace(below: "sub", with: [fifo("sub/kept"), fifo("sub/new")], startedAt: 10)
        XCTAssertEqual(new, [fifo("sub/new")])
        XCTAssertEqual(paths(entries), ["sub/kept", "sub/new", "other"])

        let whole = entries.replace(below: "", with: [fifo("other"), SkippedEntry(path: "sub/kept", reason: .invalidName)],
                                    startedAt: 20)
        XCTAssertEqual(whole, [SkippedEntry(path: "sub/kept", reason: .invalidName)], "a new reason is news")
        XCTAssertEqual(paths(entries), ["other", "sub/kept"])
    }

    func testWhatTheWatcherSawWhileAScanWalkedWinsOverTheWalk() {
        var entries = NotSyncedEntries()
        entries.insert(fifo("gone"), now: 1)
        entries.insert(fifo("dir/inner"), now: 1)
        // The scan starts at 10; meanwhile a FIFO arrives (after the walk
        // passed its folder), one it walked past goes, and a folder goes.
        entries.insert(fifo("arrived"), now: 12)
        entries.remove("gone", now: 13)
        entries.remove("dir", isDirectory: true, now: 14)
        _ = entries.replace(below: "", with: [fifo("gone"), fifo("dir/inner"), fifo("still")], startedAt: 10)
        XCTAssertEqual(paths(entries), ["arrived", "still"])
        // The next scan, after those, sees the tree as it is.
        _ = entries.replace(below: "", with: [fifo("gone")], startedAt: 20)
        XCTAssertEqual(paths(entries), ["gone"])
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
        let new = entries.replace(below: "", with: found, startedAt: 1)
        XCTAssertEqual(new.count, found.count, "each is news the first time")
        XCTAssertEqual(entries.count, NotSyncedEntries.limit)
        XCTAssertTrue(entries.isTruncated)
        XCTAssertEqual(entries.first(3).map(\.path), ["f0", "f1", "f10"])
        _ = entries.replace(below: "", with: [fifo("only")], startedAt: 2)
        XCTAssertFalse(entries.isTruncated, "a whole scan that finds fewer counts exactly again")
        XCTAssertEqual(entries.count, 1)
    }
}
