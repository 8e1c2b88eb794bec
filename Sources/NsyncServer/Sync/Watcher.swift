/// A change the watcher saw under PATH; paths are relative, `/`-separated.
public enum WatchEvent: Hashable, Sendable {
    /// Content or metadata is settled and worth a look: a writer closed the
    /// file, its mode or mtime was set, a directory or symlink appeared, or
    /// something was moved into the tree. The reconciler hashes and compares.
    case changed(String)
    /// Written to and not closed yet. The reconciler waits for `.changed`
    /// (close-after-write), or announces once size and mtime stay stable for
    /// a short while, for writers that keep files open. An mtime-only change
    /// (`touch -m`) also arrives this way: the kernel reports it as a write.
    case modified(String)
    /// Gone (deleted, or moved out of the tree), a directory or not.
    case removed(String, isDirectory: Bool)
    /// A rename with both names inside the tree (and not ignored), of a
    /// directory or not.
    case renamed(from: String, to: String, isDirectory: Bool)
    /// Events were lost or the tree moved under us: compare the whole tree
    /// with the index again. The text says why, for the log.
    case rescanNeeded(String)
    /// inotify ran out of watches; some directories are not watched. The
    /// text names fs.inotify.max_user_watches for the log. The caller falls
    /// back to periodic rescans (and may call `rewatch()` after each).
    case watchLimitReached(String)
    /// Something arrived that cannot sync: a FIFO, socket or device node,
    /// or a name that is not UTF-8 (shown with U+FFFD for its bad bytes).
    case notSynced(SkippedEntry)
    /// A name that is not UTF-8 is gone (deleted or moved out). A special
    /// file with a valid name that goes is `.removed` like any other.
    case notSyncedGone(String)
}

/// Watches PATH recursively with one raw inotify descriptor and turns its
/// events into `WatchEvent`s: one watch per directory, added for directories
/// created (or moved in) later, whose contents are reported right away since
/// files may land in them before their watch exists. Ignored directories are
/// not watched and ignored paths are not reported.
///
/// Confined to the loop thread, which polls `fd` for readability and calls
/// `drain()`, and calls it again on its next turn while
/// `hasUnlistedDirectories`: a tree that arrives (a folder of 100,000 files
/// moved in) is listed a slice per `drain`, so the loop that also sends
/// Raft's heartbeats is never held for the whole walk. For a large tree
/// `init` walks every directory; it may run on a thread-pool thread and be
/// handed over whole. Start it before the start-up scan so nothing that
/// changes during the scan is missed.
///
/// A rename's two halves are paired by cookie within one `drain()`; if the
/// second half has not been queued by then (the kernel queues both within one
/// rename call, so this is rare) the move is reported as a removal and an
/// arrival, which converges to the same tree.
public final class Watcher {
    public let root: String
    public private(set) var ignore: IgnoreRules
    /// True once a watch could not be added for lack of inotify watches.
    public private(set) var isWatchLimitReached = false
    public var fd: Int32 { inotify.fd }
    public var watchedDirectoryCount: Int { pathsByWatch.count }

    private let inotify: Inotify
    private var pathsByWatch: [Int32: String] = [:]
    private var watchesByPath = PathMap<Int32>()
    /// Files with IN_MODIFY and no IN_CLOSE_WRITE since: an IN_ATTRIB on one
    /// of them (a copier setting the mode mid-write) is not "settled".
    private var beingWritten = PathSet()
    /// Events produced outside `drain` (by `init`), returned by the next one.
    private var pending: [WatchEvent] = []
    /// Watched directories of an arrived tree whose entries are still to be
    /// listed and reported, by watch: one renamed meanwhile is listed under
    /// its new name, one deleted or moved out (its watch forgotten) is dropped.
    private var unlisted: [Int32] = []
    /// The directory of `unlisted` being read, where the last `drain` stopped.
    private var listing: (watch: Int32, stream: DirectoryStream)?
    /// Entries listed per `drain` (a large folder is read over several):
    /// about 20 ms of the loop with the caller's handling of what they report.
    public let entriesListedPerDrain: Int

    /// An arrived tree is still being listed: call `drain` again soon, even
    /// if `fd` is not readable.
    public var hasUnlistedDirectories: Bool { !unlisted.isEmpty || listing != nil }

    private static let maximumReadsPerDrain = 64
    private static let fileEvents: InotifyMask = [
        .closeWrite, .create, .delete, .movedFrom, .movedTo, .attrib, .modify, .deleteSelf, .moveSelf,
    ]

    /// At most this many directories are watched (nil: as many as the kernel
    /// allows), to leave inotify watches for other programs of the same user.
    public let maximumWatches: Int?

    public init(root: String, ignore: IgnoreRules, maximumWatches: Int? = nil, entriesListedPerDrain: Int = 4_096) throws {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
        self.ignore = ignore
        self.maximumWatches = maximumWatches
        self.entriesListedPerDrain = max(1, entriesListedPerDrain)
        inotify = try Inotify()
        // The root may be a symlink an operator chose; below it nothing is followed.
        let rootWatch = try inotify.addWatch(self.root, mask: Watcher.fileEvents.union([.onlyDirectory, .excludeUnlinked]))
        remember(rootWatch, "")
        watchAll(below: rootWatch, into: &pending)
    }

    public func close() { inotify.close() }

    /// Reads and translates everything queued now (bounded per call: the
    /// descriptor stays readable if more is left, so the poll fires again).
    public func drain() -> [WatchEvent] {
        var events = pending
        pending = []
        var moves: [UInt32: Move] = [:]
        var triedLateRead = false
        for _ in 0..<Watcher.maximumReadsPerDrain {
            let batch: [InotifyEvent]
            do {
                batch = try inotify.readEvents()
            } catch {
                events.append(.rescanNeeded("reading inotify events failed (\(error)): some changes may be lost"))
                break
            }
            if batch.isEmpty {
                // The second half of a rename is queued right after the first;
                // give it one more read before calling the move a removal.
                if triedLateRead || !moves.values.contains(where: { !$0.ignored }) { break }
                triedLateRead = true
                continue
            }
            for event in batch { handle(event, into: &events, moves: &moves) }
        }
        // Moved out of the tree: what stayed is a removal; stop watching it.
        for move in moves.values where !move.ignored && move.isDirectory {
            unwatchTree(move.path)
        }
        watch(&unlisted, resuming: &listing, reportContents: true, entries: entriesListedPerDrain, into: &events)
        return events
    }

    /// Replaces the ignore rules (after `.nsyncignore` changed): stops
    /// watching directories now ignored and watches those now included. The
    /// caller rescans to pick up what the new rules include or exclude.
    public func updateIgnoreRules(_ rules: IgnoreRules) -> [WatchEvent] {
        ignore = rules
        for (path, watch) in watchesByPath where !path.isEmpty && ignore.isIgnored(path: path, isDirectory: true) {
            inotify.removeWatch(watch)
            forget(watch)
        }
        return rewatch()
    }

    /// Walks the tree again adding the watches that are missing (after the
    /// watch limit was hit, or rules changed). Reports no contents: the
    /// caller's rescan does that.
    public func rewatch() -> [WatchEvent] {
        var events: [WatchEvent] = []
        let limitWasReached = isWatchLimitReached
        isWatchLimitReached = false
        if let rootWatch = watchesByPath[""] { watchAll(below: rootWatch, into: &events) }
        if limitWasReached && isWatchLimitReached {
            // Said once already; the caller is still rescanning periodically.
            events.removeAll { if case .watchLimitReached = $0 { return true } else { return false } }
        }
        return events
    }

    // MARK: - Translating events

    /// The first half of a rename, waiting for its second.
    private struct Move {
        var path: String
        var isDirectory: Bool
        var ignored: Bool
        /// Where its `.removed` placeholder sits in the output.
        var index: Int
    }

    private func handle(_ event: InotifyEvent, into events: inout [WatchEvent], moves: inout [UInt32: Move]) {
        let mask = event.mask
        if mask.contains(.queueOverflow) {
            let limit = Inotify.kernelLimit("max_queued_events").map { " (\($0))" } ?? ""
            events.append(.rescanNeeded("the inotify event queue overflowed: more than fs.inotify.max_queued_events\(limit) changes waited, so some were lost"))
            return
        }
        guard let directory = pathsByWatch[event.watch] else { return }
        if mask.contains(.ignored) {
            forget(event.watch)
            return
        }
        if event.name.isEmpty {
            // About the watched directory itself: its parent's watch reports
            // the same change by name, except for the root, which has none.
            if directory.isEmpty && !mask.isDisjoint(with: [.deleteSelf, .moveSelf]) {
                events.append(.rescanNeeded("the synced directory \(root) was moved or deleted"))
            }
            return
        }
        guard let name = event.nameText else {
            // Not UTF-8: cannot be an index key on every node. Reported
            // when it comes and goes (a rename to a valid name is a new arrival).
            let path = join(directory, String(decoding: event.name, as: UTF8.self))
            if ignore.isIgnored(path: path, isDirectory: mask.contains(.isDirectory)) { return }
            if !mask.isDisjoint(with: [.create, .movedTo]) {
                events.append(.notSynced(SkippedEntry(path: path, reason: .invalidName)))
            } else if !mask.isDisjoint(with: [.delete, .movedFrom]) {
                events.append(.notSyncedGone(path))
            }
            return
        }
        let path = join(directory, name)
        let isDirectory = mask.contains(.isDirectory)
        let ignored = ignore.isIgnored(path: path, isDirectory: isDirectory)

        if mask.contains(.movedFrom) {
            moves[event.cookie] = Move(path: path, isDirectory: isDirectory, ignored: ignored, index: events.count)
            if !ignored {
                events.append(.removed(path, isDirectory: isDirectory))
                beingWritten.remove(path)
            }
            return
        }
        if mask.contains(.movedTo) {
            guard let move = moves.removeValue(forKey: event.cookie) else {
                if !ignored && isDirectory { settleMovedOut(path, moves: &moves) }
                if !ignored { arrive(path, isDirectory: isDirectory, into: &events) }
                return
            }
            switch (move.ignored, ignored) {
            case (true, true):
                break
            case (true, false):
                if isDirectory { settleMovedOut(path, moves: &moves) }
                arrive(path, isDirectory: isDirectory, into: &events)
            case (false, true):
                if move.isDirectory { unwatchTree(move.path) }
            case (false, false):
                events[move.index] = .renamed(from: move.path, to: path, isDirectory: isDirectory)
                if isDirectory { renameWatches(from: move.path, to: path) }
            }
            return
        }
        if ignored { return }
        if mask.contains(.create) {
            if isDirectory { settleMovedOut(path, moves: &moves) }
            arrive(path, isDirectory: isDirectory, createdEmpty: true, into: &events)
        } else if mask.contains(.delete) {
            beingWritten.remove(path)
            events.append(.removed(path, isDirectory: isDirectory))
        } else if mask.contains(.closeWrite) {
            beingWritten.remove(path)
            events.append(.changed(path))
        } else if mask.contains(.modify) {
            beingWritten.insert(path)
            events.append(.modified(path))
        } else if mask.contains(.attrib) {
            events.append(beingWritten.contains(path) ? .modified(path) : .changed(path))
        }
    }

    /// A directory arrives at `path` while a directory moved out from there
    /// (or around it) in this drain still waits for its second half, which
    /// can no longer come: stop watching what moved out now, before the
    /// arrival is watched under the same path.
    private func settleMovedOut(_ path: String, moves: inout [UInt32: Move]) {
        for (cookie, move) in moves where !move.ignored && move.isDirectory
            && (move.path == path || path.hasPrefix(move.path + "/") || move.path.hasPrefix(path + "/")) {
            unwatchTree(move.path)
            moves[cookie] = nil
        }
    }

    /// Something new at `path`: a directory is watched and its contents
    /// reported; a file moved in is complete (`.changed`), one just created
    /// is about to be written (`.modified`); a symlink is complete either way.
    private func arrive(_ path: String, isDirectory: Bool, createdEmpty: Bool = false, into events: inout [WatchEvent]) {
        if isDirectory {
            events.append(.changed(path))
            watchDirectory(path, into: &events)
            return
        }
        guard let status = try? FileSystem.status(absolute(path)) else { return } // gone again
        switch status.kind {
        case .symlink:
            events.append(.changed(path))
        case .regular:
            events.append(createdEmpty ? .modified(path) : .changed(path))
        case .other:
            events.append(.notSynced(SkippedEntry(path: path, reason: .specialFile)))
        case .directory:
            break
        }
    }

    // MARK: - Watches

    private func absolute(_ path: String) -> String { path.isEmpty ? root : root + "/" + path }

    private func join(_ directory: String, _ name: String) -> String {
        directory.isEmpty ? name : directory + "/" + name
    }

    private func remember(_ watch: Int32, _ path: String) {
        // The kernel returns the existing descriptor for an inode already
        // watched (a directory moved while we were not looking): rebind it.
        if let old = pathsByWatch[watch], old != path, watchesByPath[old] == watch {
            watchesByPath[old] = nil
        }
        pathsByWatch[watch] = path
        watchesByPath[path] = watch
    }

    private func forget(_ watch: Int32) {
        guard let path = pathsByWatch.removeValue(forKey: watch) else { return }
        if watchesByPath[path] == watch { watchesByPath[path] = nil }
    }

    /// Watches `path` and everything below it, reporting what is inside
    /// (it may have arrived before the watch) over the next `drain`s.
    private func watchDirectory(_ path: String, into events: inout [WatchEvent]) {
        guard let watch = addWatch(path, into: &events) else { return }
        unlisted.append(watch)
    }

    /// Watches every directory below the watched one, at once, reporting nothing.
    private func watchAll(below watch: Int32, into events: inout [WatchEvent]) {
        var stack = [watch]
        var current: (watch: Int32, stream: DirectoryStream)?
        self.watch(&stack, resuming: &current, reportContents: false, entries: .max, into: &events)
    }

    /// Where a watched directory is now; nil once its watch was forgotten
    /// (deleted, moved out) or its path taken by another watch.
    private func watchedPath(_ watch: Int32) -> String? {
        guard let path = pathsByWatch[watch], watchesByPath[path] == watch else { return nil }
        return path
    }

    /// Lists the directories on `stack` (watched already), depth first,
    /// watching the directories found below and pushing them too, until
    /// `entries` entries were listed; `current` is the directory being read,
    /// where the next call goes on. Reports what it finds when
    /// `reportContents`. A directory renamed meanwhile is read on under its
    /// new name; one deleted or moved out (its watch forgotten) is dropped.
    private func watch(_ stack: inout [Int32], resuming current: inout (watch: Int32, stream: DirectoryStream)?,
                       reportContents: Bool, entries budget: Int, into events: inout [WatchEvent]) {
        var listed = 0
        while listed < budget {
            if current == nil {
                guard let watch = stack.popLast() else { return }
                guard let path = watchedPath(watch), let stream = try? DirectoryStream(absolute(path)) else { continue }
                current = (watch, stream)
            }
            guard let (watch, stream) = current, let directory = watchedPath(watch),
                  let entry = (try? stream.next()) ?? nil else {
                current = nil  // read to its end, unreadable, or no longer watched
                continue
            }
            listed += 1
            guard let name = entry.name else {
                let path = join(directory, entry.displayName)
                if reportContents && !ignore.isIgnoredEntry(path: path, isDirectory: entry.status?.kind == .directory) {
                    events.append(.notSynced(SkippedEntry(path: path, reason: .invalidName)))
                }
                continue
            }
            guard let status = entry.status else { continue }
            let path = join(directory, name)
            let isDirectory = status.kind == .directory
            if ignore.isIgnoredEntry(path: path, isDirectory: isDirectory) { continue }
            switch status.kind {
            case .directory:
                if reportContents { events.append(.changed(path)) }
                if let watch = addWatch(path, into: &events) { stack.append(watch) }
            case .regular:
                // Its writer may have been seen (and not its close) since the watch.
                if reportContents { events.append(beingWritten.contains(path) ? .modified(path) : .changed(path)) }
            case .symlink:
                if reportContents { events.append(.changed(path)) }
            case .other:
                if reportContents { events.append(.notSynced(SkippedEntry(path: path, reason: .specialFile))) }
            }
        }
    }

    /// Adds one directory watch; nil when the directory cannot be watched
    /// (gone, not a directory any more, or out of watches).
    private func addWatch(_ path: String, into events: inout [WatchEvent]) -> Int32? {
        if isWatchLimitReached { return nil }
        if let cap = maximumWatches, pathsByWatch.count >= cap {
            reportWatchLimit(at: path, limit: "nsyncd's own cap of \(cap) watches", into: &events)
            return nil
        }
        do {
            let watch = try inotify.addWatch(absolute(path), mask: Watcher.fileEvents.union([.onlyDirectory, .dontFollow, .excludeUnlinked]))
            remember(watch, path)
            return watch
        } catch let error as SystemError where error.isNoSpace {
            let limit = Inotify.kernelLimit("max_user_watches").map(String.init) ?? "unknown"
            reportWatchLimit(at: path, limit: "fs.inotify.max_user_watches = \(limit)", into: &events)
            return nil
        } catch {
            // Removed or replaced meanwhile, or unreadable: the scanner
            // reports unreadable directories; the rest reports itself.
            return nil
        }
    }

    private func reportWatchLimit(at path: String, limit: String, into events: inout [WatchEvent]) {
        isWatchLimitReached = true
        events.append(.watchLimitReached(
            "inotify watch limit reached (\(limit)) after watching \(watchedDirectoryCount) directories of "
            + "\(root); \(absolute(path)) and others are not watched, so their changes are found by periodic "
            + "rescans instead of at once. Raise fs.inotify.max_user_watches (sysctl -w "
            + "fs.inotify.max_user_watches=524288, persisted in /etc/sysctl.d/) and restart nsyncd."))
    }

    private func unwatchTree(_ path: String) {
        let prefix = path + "/"
        for (watchPath, watch) in watchesByPath where watchPath == path || watchPath.hasPrefix(prefix) {
            inotify.removeWatch(watch)
            forget(watch)
        }
        beingWritten = PathSet(beingWritten.filter { !$0.hasPrefix(prefix) })
    }

    private func renameWatches(from old: String, to new: String) {
        let prefix = old + "/"
        for (watchPath, watch) in watchesByPath where watchPath == old || watchPath.hasPrefix(prefix) {
            let moved = new + watchPath.dropFirst(old.count)
            watchesByPath[watchPath] = nil
            pathsByWatch[watch] = moved
            watchesByPath[moved] = watch
        }
        beingWritten = PathSet(beingWritten.map { $0.hasPrefix(prefix) ? new + $0.dropFirst(old.count) : $0 })
    }
}
