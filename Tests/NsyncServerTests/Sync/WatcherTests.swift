import Foundation
import XCTest
@testable import NsyncServer

/// Real inotify in a temp directory; every wait polls the descriptor with a deadline.
final class WatcherTests: XCTestCase {
    func testWriteThenCloseIsModifiedThenChanged() throws {
        let dir = try SyncScratchDirectory("watch")
        let watcher = try Watcher(root: dir.path, ignore: .defaults)
        XCTAssertEqual(watcher.drain(), [])
        let fd = open(dir.url("a.txt"), O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
        _ = write(fd, "hello", 5)
        let whileOpen = collectEvents(from: watcher) { $0.contains(.modified("a.txt")) }
        XCTAssertEqual(Set(whileOpen), [.modified("a.txt")], "no .changed while the writer holds it open")
        close(fd)
        let events = collectEvents(from: watcher) { $0.contains(.changed("a.txt")) }
        XCTAssertEqual(events, [.changed("a.txt")])
    }

    func testAttributeChangesAreChangedUnlessTheFileIsStillBeingWritten() throws {
        let dir = try SyncScratchDirectory("watch")
        try dir.write("done", "x")
        let watcher = try Watcher(root: dir.path, ignore: .defaults)
        chmod(dir.url("done"), 0o600)
        XCTAssertEqual(collectEvents(from: watcher) { !$0.isEmpty }, [.changed("done")])
        try FileSystem.setModificationTime(dir.url("done"), 1_000_000_000)
        XCTAssertEqual(collectEvents(from: watcher) { !$0.isEmpty }, [.changed("done")])

        let fd = open(dir.url("open"), O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
        defer { close(fd) }
        _ = write(fd, "partial", 7)
        _ = collectEvents(from: watcher) { $0.contains(.modified("open")) }
        fchmod(fd, 0o600) // a copier setting the mode before it has finished
        let events = collectEvents(from: watcher) { !$0.isEmpty }
        XCTAssertEqual(events, [.modified("open")])
    }

    func testADirectoryModeChangeIsReportedOnceByItsParent() throws {
        let dir = try SyncScratchDirectory("watch")
        try dir.mkdir("sub")
        let watcher = try Watcher(root: dir.path, ignore: .defaults)
        chmod(dir.url("sub"), 0o750)
        let events = collectEvents(from: watcher) { !$0.isEmpty } + collectEvents(from: watcher, quietFor: 0.2)
        XCTAssertEqual(events, [.changed("sub")], "the directory's own IN_ATTRIB is not a second report")
    }

    func testTheIgnoreFileIsReportedEvenWhenItsRulesWouldIgnoreIt() throws {
        let dir = try SyncScratchDirectory("watch")
        let watcher = try Watcher(root: dir.path, ignore: IgnoreRules(text: ".*\n"))
        try dir.write(".nsyncignore", ".*\n")
        try dir.write(".hidden", "h")
        let events = collectEvents(from: watcher) { $0.contains(.changed(".nsyncignore")) } + collectEvents(from: watcher, quietFor: 0.2)
        XCTAssertEqual(Set(events), [.modified(".nsyncignore"), .changed(".nsyncignore")])
    }

    func testSymlinksAndEmptyDirectoriesAreChangedAtOnceAndHardLinksAwaitStability() throws {
        let dir = try SyncScratchDirectory("watch")
        try dir.write("f", "x")
        let watcher = try Watcher(root: dir.path, ignore: .defaults)
        try FileSystem.createSymlink(at: dir.url("l"), target: "f")
        try FileSystem.makeDirectory(dir.url("empty"))
        XCTAssertEqual(link(dir.url("f"), dir.url("hard")), 0)
        let events = collectEvents(from: watcher) { $0.count >= 3 }
        XCTAssertEqual(events, [.changed("l"), .changed("empty"), .modified("hard")])
        XCTAssertEqual(watcher.watchedDirectoryCount, 2)
    }

    func testDirectoriesCreatedLaterAreWatchedAndTheirEarlyContentsReported() throws {
        let dir = try SyncScratchDirectory("watch")
        let watcher = try Watcher(root: dir.path, ignore: .defaults)
        // Created before the watcher can react: the watcher must find them by listing.
        try dir.mkdir("a/b/c")
        try dir.write("a/b/c/early.txt", "e")
        try dir.write("a/top.txt", "t")
        var events = collectEvents(from: watcher) {
            Set($0).isSuperset(of: [.changed("a"), .changed("a/b"), .changed("a/b/c"), .changed("a/b/c/early.txt"), .changed("a/top.txt")])
        }
        XCTAssertTrue(Set(events).isSuperset(of: [.changed("a"), .changed("a/b"), .changed("a/b/c"),
                                                  .changed("a/b/c/early.txt"), .changed("a/top.txt")]), "\(events)")
        XCTAssertEqual(watcher.watchedDirectoryCount, 4)
        try dir.write("a/b/c/later.txt", "l")
        events = collectEvents(from: watcher) { $0.contains(.changed("a/b/c/later.txt")) }
        XCTAssertEqual(events.last, .changed("a/b/c/later.txt"))
    }

    func testRenamesInsideTheTreeArePairedAndMovedDirectoriesKeepReportingUnderTheirNewName() throws {
        let dir = try SyncScratchDirectory("watch")
        try dir.mkdir("old/sub")
        try dir.write("f.txt", "x")
        let watcher = try Watcher(root: dir.path, ignore: .defaults)
        XCTAssertEqual(rename(dir.url("f.txt"), dir.url("old/g.txt")), 0)
        XCTAssertEqual(collectEvents(from: watcher) { !$0.isEmpty }, [.renamed(from: "f.txt", to: "old/g.txt", isDirectory: false)])
        XCTAssertEqual(rename(dir.url("old"), dir.url("new")), 0)
        XCTAssertEqual(collectEvents(from: watcher) { !$0.isEmpty }, [.renamed(from: "old", to: "new", isDirectory: true)])
        try dir.write("new/sub/inside.txt", "i")
        let events = collectEvents(from: watcher) { $0.contains(.changed("new/sub/inside.txt")) }
        XCTAssertEqual(events.last, .changed("new/sub/inside.txt"))
        XCTAssertFalse(events.contains { "\($0)".contains("old/") }, "\(events)")
    }

    func testMovingOutOfTheTreeIsARemovalAndMovingInIsAnArrival() throws {
        let outside = try SyncScratchDirectory("watch-outside")
        let dir = try SyncScratchDirectory("watch")
        try dir.mkdir("leaving/deep")
        try dir.write("file.txt", "f")
        let watcher = try Watcher(root: dir.path, ignore: .defaults)
        XCTAssertEqual(watcher.watchedDirectoryCount, 3)
        XCTAssertEqual(rename(dir.url("leaving"), outside.url("gone")), 0)
        XCTAssertEqual(rename(dir.url("file.txt"), outside.url("file.txt")), 0)
        XCTAssertEqual(collectEvents(from: watcher) { $0.count >= 2 }, [.removed("leaving", isDirectory: true), .removed("file.txt", isDirectory: false)])
        XCTAssertEqual(watcher.watchedDirectoryCount, 1, "watches of the moved-out tree are dropped")
        try outside.write("gone/deep/after.txt", "a")
        XCTAssertEqual(collectEvents(from: watcher, quietFor: 0.3), [], "the moved-out tree is not reported")

        XCTAssertEqual(rename(outside.url("gone"), dir.url("back")), 0)
        let events = collectEvents(from: watcher) { $0.contains(.changed("back/deep/after.txt")) }
        XCTAssertEqual(Set(events), [.changed("back"), .changed("back/deep"), .changed("back/deep/after.txt")])
        XCTAssertEqual(watcher.watchedDirectoryCount, 3)
    }

    /// A tree moved in is listed a slice per drain (the daemon's loop sends
    /// Raft heartbeats between them): 100,000 files moved into the leader
    /// held its loop for most of a second and cost the cluster its leader.
    func testATreeMovedInIsListedASlicePerDrainAndEveryEntryIsReported() throws {
        let outside = try SyncScratchDirectory("watch-outside")
        let dir = try SyncScratchDirectory("watch")
        var expected: Set<WatchEvent> = [.changed("tree")]
        for d in 0..<20 {
            try outside.mkdir("tree/d\(d)/inner")
            expected.formUnion([.changed("tree/d\(d)"), .changed("tree/d\(d)/inner")])
            for f in 0..<10 {
                try outside.write("tree/d\(d)/f\(f)", "x")
                expected.insert(.changed("tree/d\(d)/f\(f)"))
            }
            try outside.write("tree/d\(d)/inner/deep", "y")
            expected.insert(.changed("tree/d\(d)/inner/deep"))
        }
        let watcher = try Watcher(root: dir.path, ignore: .defaults, entriesListedPerDrain: 15)
        XCTAssertEqual(rename(outside.url("tree"), dir.url("tree")), 0)

        var events: [WatchEvent] = []
        var drains = 0
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, Set(events) != expected || watcher.hasUnlistedDirectories {
            var pfd = pollfd(fd: watcher.fd, events: Int16(POLLIN), revents: 0)
            guard watcher.hasUnlistedDirectories || poll(&pfd, 1, 50) > 0 else { continue }
            let slice = watcher.drain()
            drains += 1
            // The move's own event plus at most 15 listed entries.
            XCTAssertLessThanOrEqual(slice.count, 1 + 15, "drain \(drains): \(slice)")
            events += slice
        }
        XCTAssertEqual(Set(events), expected)
        XCTAssertEqual(events.count, expected.count, "each entry reported once")
        XCTAssertGreaterThanOrEqual(drains, 10, "listed over many drains, not at once")
        XCTAssertFalse(watcher.hasUnlistedDirectories)
        XCTAssertEqual(watcher.watchedDirectoryCount, 1 + 1 + 40)
        try dir.write("tree/d7/inner/later", "l")
        XCTAssertEqual(collectEvents(from: watcher) { $0.contains(.changed("tree/d7/inner/later")) }.last,
                       .changed("tree/d7/inner/later"), "the deepest directories are watched")
    }

    /// One folder of many files is read over several drains too, and goes
    /// on under its new name when renamed in between.
    func testALargeFolderMovedInIsReadOverSeveralDrainsEvenWhenRenamedMeanwhile() throws {
        let outside = try SyncScratchDirectory("watch-outside")
        let dir = try SyncScratchDirectory("watch")
        try outside.mkdir("flat")
        for f in 0..<100 { try outside.write("flat/f\(f)", "x") }
        let watcher = try Watcher(root: dir.path, ignore: .defaults, entriesListedPerDrain: 10)
        XCTAssertEqual(rename(outside.url("flat"), dir.url("flat")), 0)
        var events = collectEvents(from: watcher) { $0.count > 10 }
        XCTAssertEqual(events.count, 1 + 10, "the move and the first 10 entries: \(events)")
        XCTAssertTrue(watcher.hasUnlistedDirectories)
        XCTAssertEqual(rename(dir.url("flat"), dir.url("renamed")), 0)
        events += collectEvents(from: watcher) { _ in !watcher.hasUnlistedDirectories }
        let listed = Set(events.compactMap { event -> String? in
            if case .changed(let path) = event, path.contains("/f") { return String(path.split(separator: "/").last!) }
            return nil
        })
        XCTAssertEqual(listed, Set((0..<100).map { "f\($0)" }), "every file once, under either name")
        let afterRename = events.drop { $0 != .renamed(from: "flat", to: "renamed", isDirectory: true) }
        XCTAssertFalse(afterRename.contains { if case .changed(let path) = $0 { return path.hasPrefix("flat/") } else { return false } },
                       "after the rename, entries come under the new name: \(events)")
        XCTAssertEqual(events.filter { if case .changed(let path) = $0 { return path.contains("/f") } else { return false } }.count, 100)
    }

    /// A directory of the arrived tree that is renamed or deleted before its
    /// turn is listed under its new name, or not at all.
    func testADirectoryRenamedOrDeletedBeforeItsListingIsListedUnderItsNewNameOrNotAtAll() throws {
        let outside = try SyncScratchDirectory("watch-outside")
        let dir = try SyncScratchDirectory("watch")
        for name in ["a", "b", "c"] {
            try outside.mkdir("tree/\(name)/sub")
            try outside.write("tree/\(name)/sub/file", name)
        }
        let watcher = try Watcher(root: dir.path, ignore: .defaults, entriesListedPerDrain: 1)
        XCTAssertEqual(rename(outside.url("tree"), dir.url("tree")), 0)
        let first = collectEvents(from: watcher) {
            Set($0).isSuperset(of: [.changed("tree/a"), .changed("tree/b"), .changed("tree/c")])
        }
        XCTAssertEqual(Set(first), [.changed("tree"), .changed("tree/a"), .changed("tree/b"), .changed("tree/c")],
                       "one entry listed per drain: only tree's own entries so far")
        XCTAssertTrue(watcher.hasUnlistedDirectories)

        XCTAssertEqual(rename(dir.url("tree/a"), dir.url("tree/renamed")), 0)
        try FileManager.default.removeItem(atPath: dir.url("tree/b"))
        let rest = collectEvents(from: watcher) { _ in !watcher.hasUnlistedDirectories } + collectEvents(from: watcher, quietFor: 0.2)
        XCTAssertTrue(Set(rest).isSuperset(of: [.renamed(from: "tree/a", to: "tree/renamed", isDirectory: true),
                                               .changed("tree/renamed/sub"), .changed("tree/renamed/sub/file"),
                                               .changed("tree/c/sub"), .changed("tree/c/sub/file"),
                                               .removed("tree/b", isDirectory: true)]), "\(rest)")
        XCTAssertFalse(rest.contains { "\($0)".contains("tree/a/") }, "nothing under the old name: \(rest)")
        XCTAssertFalse(rest.contains { if case .changed(let path) = $0 { return path.hasPrefix("tree/b/") } else { return false } },
                       "nothing listed in the deleted directory: \(rest)")
        XCTAssertEqual(watcher.watchedDirectoryCount, 1 + 1 + 4, "tree, renamed and c with their subs; b's watches gone")
    }

    func testADirectoryMovedOutAndBackBeforeItsListingIsListed() throws {
        let outside = try SyncScratchDirectory("watch-outside")
        let dir = try SyncScratchDirectory("watch")
        for name in ["a", "b"] {
            try outside.mkdir("tree/\(name)")
            try outside.write("tree/\(name)/f", name)
        }
        let watcher = try Watcher(root: dir.path, ignore: .defaults, entriesListedPerDrain: 1)
        XCTAssertEqual(rename(outside.url("tree"), dir.url("tree")), 0)
        var events = collectEvents(from: watcher) { $0.contains(.changed("tree/b")) }
        XCTAssertTrue(watcher.hasUnlistedDirectories)
        XCTAssertEqual(rename(dir.url("tree/a"), outside.url("a")), 0)
        XCTAssertEqual(rename(outside.url("a"), dir.url("tree/a")), 0)
        events += collectEvents(from: watcher) { $0.contains(.changed("tree/a/f")) && $0.contains(.changed("tree/b/f")) }
        XCTAssertTrue(Set(events).isSuperset(of: [.changed("tree/a/f"), .changed("tree/b/f")]), "\(events)")
    }

    /// A directory moved out and another (or the same one) moved in under its
    /// name before the watcher reads either: the arrival is listed and
    /// watched, and the one outside is no longer reported as if inside.
    func testADirectoryReplacedWithinOneDrainIsListedAndWatchedAndTheOldOneIsNot() throws {
        let outside = try SyncScratchDirectory("watch-outside")
        let dir = try SyncScratchDirectory("watch")
        try dir.mkdir("P/sub")
        try dir.write("P/old", "o")
        try outside.mkdir("new/inner")
        try outside.write("new/fresh", "n")
        try outside.write("new/inner/deep", "d")
        let watcher = try Watcher(root: dir.path, ignore: .defaults)
        XCTAssertEqual(rename(dir.url("P"), outside.url("oldP")), 0)
        XCTAssertEqual(rename(outside.url("new"), dir.url("P")), 0)
        let events = collectEvents(from: watcher) { Set($0).isSuperset(of: [.changed("P/fresh"), .changed("P/inner/deep")]) }
        XCTAssertTrue(Set(events).isSuperset(of: [.removed("P", isDirectory: true), .changed("P"), .changed("P/fresh"),
                                                 .changed("P/inner"), .changed("P/inner/deep")]), "\(events)")
        XCTAssertEqual(watcher.watchedDirectoryCount, 3, "the root, the new P and P/inner")
        try dir.write("P/later", "l")
        try outside.write("oldP/outsider", "x")
        let later = collectEvents(from: watcher) { $0.contains(.changed("P/later")) } + collectEvents(from: watcher, quietFor: 0.2)
        XCTAssertTrue(later.contains(.changed("P/later")), "the new P is watched: \(later)")
        XCTAssertFalse(later.contains { "\($0)".contains("outsider") }, "the old P is not watched any more: \(later)")

        // The same directory out and back, changed while outside.
        XCTAssertEqual(rename(dir.url("P"), outside.url("P")), 0)
        try outside.write("P/whileOut", "w")
        XCTAssertEqual(rename(outside.url("P"), dir.url("P")), 0)
        let back = collectEvents(from: watcher) { $0.contains(.changed("P/whileOut")) }
        XCTAssertTrue(back.contains(.changed("P/whileOut")), "\(back)")
        try dir.write("P/inner/after", "a")
        XCTAssertEqual(collectEvents(from: watcher) { $0.contains(.changed("P/inner/after")) }.last,
                       .changed("P/inner/after"), "watched again below")
    }

    func testDeletingATreeReportsEveryRemovalAndDropsItsWatches() throws {
        let dir = try SyncScratchDirectory("watch")
        try dir.mkdir("t/u/v")
        try dir.write("t/u/v/x", "x")
        try dir.write("t/y", "y")
        let watcher = try Watcher(root: dir.path, ignore: .defaults)
        XCTAssertEqual(watcher.watchedDirectoryCount, 4)
        try FileManager.default.removeItem(atPath: dir.url("t"))
        let expected: Set<WatchEvent> = [.removed("t/u/v/x", isDirectory: false), .removed("t/u/v", isDirectory: true),
                                         .removed("t/u", isDirectory: true), .removed("t/y", isDirectory: false),
                                         .removed("t", isDirectory: true)]
        let events = collectEvents(from: watcher) { Set($0).isSuperset(of: expected) && watcher.watchedDirectoryCount == 1 }
        XCTAssertEqual(Set(events), expected)
        XCTAssertEqual(watcher.watchedDirectoryCount, 1)
    }

    func testIgnoredPathsAreNeitherWatchedNorReportedAndEditorSavesAreArrivals() throws {
        let dir = try SyncScratchDirectory("watch")
        try dir.mkdir("build")
        let rules = IgnoreRules(text: "*.tmp\n!keep.tmp\nbuild/\n")
        let watcher = try Watcher(root: dir.path, ignore: rules)
        XCTAssertEqual(watcher.watchedDirectoryCount, 1, "build/ is not watched")
        try dir.write("build/x.o", "o")
        try dir.write("scratch.tmp", "t")
        try dir.write(".doc.swp", "swap")
        try dir.write("doc~", "backup")
        try dir.mkdir("sub/build")
        try dir.write("sub/build/y.o", "o")
        try dir.write("keep.tmp", "k")
        // An editor's atomic save: write a temporary name, rename over the real one.
        try dir.write(".#doc", "new")
        XCTAssertEqual(rename(dir.url(".#doc"), dir.url("doc")), 0)
        let events = collectEvents(from: watcher) { $0.contains(.changed("doc")) }
        XCTAssertEqual(Set(events), [.changed("sub"), .modified("keep.tmp"), .changed("keep.tmp"), .changed("doc")])
        XCTAssertEqual(watcher.watchedDirectoryCount, 2, "sub is watched, sub/build is not")

        XCTAssertEqual(rename(dir.url("doc"), dir.url("doc.tmp")), 0)
        XCTAssertEqual(collectEvents(from: watcher) { !$0.isEmpty }, [.removed("doc", isDirectory: false)], "renamed to an ignored name")
    }

    func testUpdatingIgnoreRulesWatchesNewlyIncludedDirectories() throws {
        let dir = try SyncScratchDirectory("watch")
        try dir.mkdir("build/out")
        let watcher = try Watcher(root: dir.path, ignore: IgnoreRules(text: "build/"))
        XCTAssertEqual(watcher.watchedDirectoryCount, 1)
        XCTAssertEqual(watcher.updateIgnoreRules(.defaults), [])
        XCTAssertEqual(watcher.watchedDirectoryCount, 3)
        try dir.write("build/out/a", "a")
        XCTAssertEqual(collectEvents(from: watcher) { $0.contains(.changed("build/out/a")) }.last, .changed("build/out/a"))
        XCTAssertEqual(watcher.updateIgnoreRules(IgnoreRules(text: "out/")), [])
        XCTAssertEqual(watcher.watchedDirectoryCount, 2)
        try dir.write("build/out/b", "b")
        XCTAssertEqual(collectEvents(from: watcher, quietFor: 0.3), [])
    }

    func testHittingTheWatchLimitNamesTheSysctlOnceAndRewatchAddsTheRest() throws {
        let dir = try SyncScratchDirectory("watch")
        for name in ["a", "b", "c"] { try dir.mkdir(name) }
        let watcher = try Watcher(root: dir.path, ignore: .defaults, maximumWatches: 2)
        XCTAssertTrue(watcher.isWatchLimitReached)
        let events = watcher.drain()
        XCTAssertEqual(events.count, 1)
        guard case .watchLimitReached(let message)? = events.first else { return XCTFail("\(events)") }
        XCTAssertTrue(message.contains("fs.inotify.max_user_watches"), message)
        XCTAssertTrue(message.contains("periodic rescans"), message)
        XCTAssertEqual(watcher.watchedDirectoryCount, 2)
        try dir.mkdir("d")
        // The new directory is reported, but cannot be watched either: no second message.
        XCTAssertEqual(collectEvents(from: watcher) { !$0.isEmpty }, [.changed("d")])
        XCTAssertEqual(watcher.rewatch(), [], "still at the limit: said once already")
    }

    func testQueueOverflowAsksForARescan() throws {
        let dir = try SyncScratchDirectory("watch")
        try dir.write("x")
        try dir.write("y")
        let watcher = try Watcher(root: dir.path, ignore: .defaults)
        guard let queueLimit = Inotify.kernelLimit("max_queued_events"), queueLimit <= 1_000_000 else {
            throw XCTSkip("max_queued_events unknown or too large to overflow quickly")
        }
        // Alternate between two names so the kernel cannot merge repeats.
        for i in 0...(queueLimit + 10) { chmod(dir.url(i % 2 == 0 ? "x" : "y"), i % 4 < 2 ? 0o644 : 0o600) }
        let events = collectEvents(from: watcher) { $0.contains { if case .rescanNeeded = $0 { return true } else { return false } } }
        guard case .rescanNeeded(let reason)? = events.first(where: { if case .rescanNeeded = $0 { return true } else { return false } }) else {
            return XCTFail("no rescan after \(queueLimit + 10) events: \(events.count) events")
        }
        XCTAssertTrue(reason.contains("fs.inotify.max_queued_events"), reason)
    }

    func testRemovingTheRootAsksForARescan() throws {
        let dir = try SyncScratchDirectory("watch")
        try dir.mkdir("root")
        let watcher = try Watcher(root: dir.url("root"), ignore: .defaults)
        XCTAssertEqual(rmdir(dir.url("root")), 0)
        let events = collectEvents(from: watcher) { !$0.isEmpty }
        XCTAssertEqual(events.count, 1)
        guard case .rescanNeeded(let reason)? = events.first else { return XCTFail("\(events)") }
        XCTAssertTrue(reason.contains("moved or deleted"), reason)
    }
}
