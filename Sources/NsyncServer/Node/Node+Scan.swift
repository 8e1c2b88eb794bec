import Logging

/// The whole-tree scan: at start-up, when events were lost, and from time
/// to time for what inotify never reports. Loop thread only.
extension Node {
    /// A hard-linked file's change is followed by a rescan this soon (ms),
    /// and never sooner after the last walk than this many times that walk
    /// took: a tree whose hard-linked files keep changing costs at most a
    /// tenth of one thread-pool thread in walks.
    static let hardLinkRescanDelay: UInt64 = 2_000
    static let hardLinkRescanSpacing: UInt64 = 10

    /// Rescans every `interval` ms (0: never): inotify reports a change
    /// under the name it was made through, so another name of the same
    /// file (a hard link) is not told; nor is a write through a memory
    /// mapping. What the scan finds changed is looked at as usual.
    func startPeriodicRescans(every interval: UInt64) {
        guard interval > 0 else { return }
        let timer = LoopTimer(loop: loop)
        timer.start(after: interval, repeating: interval) { [unowned self] in
            rescan(reason: "periodic, every \(interval / 1000) s", routine: true)
        }
        sync.timers.append(timer)
    }

    /// Out of inotify watches: some directories are not watched, so the
    /// tree is scanned every 30 s, and their watches tried again first.
    func startWatchLimitRescans() {
        let timer = LoopTimer(loop: loop)
        timer.start(after: 30_000, repeating: 30_000) { [unowned self] in
            handle(sync.watcher?.rewatch() ?? [])
            rescan(reason: "periodic (inotify watch limit reached)")
        }
        sync.timers.append(timer)
    }

    /// A file with other names (hard links) was hashed with the stat
    /// `local`: if that stat is new, the others changed too, unreported.
    /// They are found by a rescan soon, wherever they are in the tree (the
    /// manifest keeps no map from inodes to names). A stat seen before asks
    /// for nothing: the rescan's own look at the other names sees it again,
    /// and so does every look at a file that cannot be announced now (no
    /// quorum, unreadable), which must not rescan again and again.
    func rescanForHardLinks(_ local: LocalFile) {
        let stat = SyncState.HardLinkStat(size: local.size, mtime: local.mtime)
        guard sync.hardLinkStats[local.inode] != stat else { return }
        if sync.hardLinkStats.count >= Node.hardLinkStatsKept { sync.hardLinkStats.removeAll() }
        sync.hardLinkStats[local.inode] = stat
        scheduleHardLinkRescan()
    }

    /// Bounds the stats `rescanForHardLinks` remembers.
    static let hardLinkStatsKept = 10_000

    private func scheduleHardLinkRescan() {
        guard sync.hardLinkRescan == nil, !stopping else { return }
        let now = loop.now
        let earliest = sync.scanEndedAt + Node.hardLinkRescanSpacing * sync.scanWalkMilliseconds
        let delay = max(Node.hardLinkRescanDelay, earliest > now ? earliest - now : 0)
        sync.hardLinkRescan = loop.schedule(after: delay) { [unowned self] in
            sync.hardLinkRescan = nil
            // A walk under way may have passed the other names already.
            if sync.scanning { scheduleHardLinkRescan() } else { rescan(reason: "a file with hard links changed", routine: true) }
        }
    }

    /// Compares the whole tree with the manifest: what changed while the node
    /// was down (or while events were lost, or unreported) is observed. A
    /// `routine` scan (periodic, or for hard links) logs only what it found.
    /// One asked for while another walks is dropped, unless it is
    /// `queued` (events were lost: the running walk may have passed what
    /// they changed), then it runs once that one ends.
    func rescan(reason: String, routine: Bool = false, queued: Bool = false) {
        guard !sync.scanning else {
            if queued { sync.rescanAfterScan = reason }
            return
        }
        sync.scanning = true
        let root = config.root
        let ignore = sync.ignore
        let manifest = reconciler.manifest
        logger.log(level: routine ? .debug : .info, "scanning \(root) (\(reason))")
        let started = loop.now
        let began = sync.notSynced.scanBegins()
        sync.scanStartedAt = started
        sync.scanLoggedAt = started
        sync.scanProgress = NodeStatus.Scan(filesDone: 0, filesTotal: 0, bytesHashed: 0)
        // Files being written now: their other names (hard links, found by
        // inode in the walk) are left to their settle timers too.
        var beingWritten = PathSet()
        for path in sync.settling.keys { beingWritten.insert(path) }
        for (path, busy) in sync.busyWriters where busy.lookStartedAt != nil { beingWritten.insert(path) }
        let loop = self.loop
        loop.queueWork({ [weak self] () -> Result<(changed: [String], total: Int, skipped: [SkippedEntry],
                                                   moved: [(String, LocalFile)]), Error> in
            Result {
                let result = try DirectoryScanner.scan(root: root, ignore: ignore, progressInterval: 5_000) { entries, _ in
                    loop.execute { self?.sync.scanProgress?.filesDone = entries }
                }
                var changed: [String] = []
                var seen = PathSet()
                seen.reserveCapacity(result.entries.count)
                var busyInodes = Set<UInt64>()
                if !beingWritten.isEmpty {
                    for entry in result.entries where entry.kind == .file && beingWritten.contains(entry.path) {
                        busyInodes.insert(entry.inode)
                    }
                }
                for entry in result.entries {
                    seen.insert(entry.path)
                    if let known = manifest[entry.path]?.local ?? nil, LocalDisk.unchanged(entry, known) { continue }
                    if entry.kind == .file, busyInodes.contains(entry.inode) { continue }
                    changed.append(entry.path)
                }
                // Unreadable directories hide their contents: not deletions.
                let hidden = result.skipped.compactMap { s -> String? in
                    if case .unreadable = s.reason { return s.path + "/" } else { return nil }
                }
                // Files gone from their names since the manifest was saved, by
                // inode: a new name with that very stat was renamed (while the
                // node was down) and keeps the hash, nothing is read again.
                var vanished: [UInt64: LocalFile] = [:]
                for (path, entry) in manifest where entry.local != nil && !seen.contains(path) {
                    if hidden.contains(where: { path.hasPrefix($0) }) { continue }
                    changed.append(path)
                    if let local = entry.local, local.kind == .file, local.inode != 0 { vanished[local.inode] = local }
                }
                var moved: [(String, LocalFile)] = []
                if !vanished.isEmpty {
                    for entry in result.entries where entry.kind == .file && (manifest[entry.path]?.local ?? nil) == nil {
                        if let local = vanished[entry.inode] { moved.append((entry.path, local)) }
                    }
                }
                return (changed, result.entries.count, result.skipped, moved)
            }
        }, completion: { [unowned self] result in
            sync.scanning = false
            sync.scanEndedAt = loop.now
            sync.scanWalkMilliseconds = loop.now - started
            defer {
                // The start-up walk ended: the fetches it held go, but where
                // it found something to look at (the look decides then).
                if sync.startupWalk {
                    sync.startupWalk = false
                    let held = sync.fetchesAfterWalk
                    sync.fetchesAfterWalk.removeAll()
                    // Decided again against the index as it is now (a held
                    // record may be superseded or deleted meanwhile).
                    for fetch in held {
                        perform(reconciler.heldFetchReleased(fetch.path, version: fetch.version, index: index))
                    }
                }
                if let again = sync.rescanAfterScan, !stopping {
                    sync.rescanAfterScan = nil
                    rescan(reason: again + ", asked for during the last scan")
                }
            }
            switch result {
            case .failure(let error):
                recordError("cannot scan \(root): \(error)")
            case .success(var scan):
                // Files still being written are looked at once they settle,
                // as always: a look now could catch one half-written.
                scan.changed.removeAll { sync.settling[$0] != nil || sync.busyWriters[$0]?.lookStartedAt != nil }
                let quiet = routine && scan.changed.isEmpty
                noteNotSynced(below: "", scan.skipped, scanBegan: began)
                logger.log(level: quiet ? .debug : .info, "scan done (\(reason))",
                           metadata: ["entries": "\(scan.total)", "to look at": "\(scan.changed.count)",
                                      "ms": "\(loop.now - started)"])
                sync.scanProgress = NodeStatus.Scan(filesDone: 0, filesTotal: scan.changed.count, bytesHashed: 0)
                sync.scanPending = PathSet(scan.changed)
                for (path, local) in scan.moved { sync.renameHints[path] = (local, loop.now) }
                if !scan.moved.isEmpty {
                    logger.info("scan: \(scan.moved.count) files under new names have the inode and stat of files gone from old ones (renamed): their hashes are kept unless they changed")
                }
                for path in scan.changed { observe(path) }
                scanStepDone(nil)
                perform(reconciler.reconcileAll(index: index))
                flushSoon()
            }
        })
    }

    /// Counts one path of the scan as looked at; logs progress now and then
    /// and once at the end.
    func scanStepDone(_ bytes: UInt64?) {
        guard var progress = sync.scanProgress else { return }
        if let bytes {
            progress.filesDone += 1
            progress.bytesHashed += bytes
        }
        sync.scanProgress = progress
        let now = loop.now
        if sync.scanPending.isEmpty {
            sync.scanProgress = nil
            if progress.filesTotal > 0 {
                logger.info("scan: \(progress.filesTotal) changed paths looked at, \(NodeStatus.bytes(progress.bytesHashed)) hashed in \(now - sync.scanStartedAt) ms")
            }
        } else if now - sync.scanLoggedAt >= 5_000 {
            sync.scanLoggedAt = now
            logger.info("scan: \(progress.filesDone)/\(progress.filesTotal) paths looked at, \(NodeStatus.bytes(progress.bytesHashed)) hashed")
        }
    }

    /// A scan logs at most this many entries that do not sync by name.
    static let notSyncedLogLimit = 100

    /// Something here that does not sync was seen (by the watcher or a
    /// look): logged when new, at info once in a while per path.
    func noteNotSynced(_ entry: SkippedEntry) {
        guard sync.notSynced.insert(entry) else { return }
        logger.log(level: sync.notSynced.logDue(entry.path, now: loop.now) ? .info : .debug, "not syncing \(entry)")
    }

    /// What a scan of `directory` ("" for the whole tree) that began at
    /// `scanBegan` found that does not sync: what is gone since its walk
    /// (a stat says; a name that is not UTF-8 cannot be stat'ed by its
    /// display name and stays until the next scan) is left out; the log
    /// names what was not known before, the first `notSyncedLogLimit`.
    func noteNotSynced(below directory: String, _ found: [SkippedEntry], scanBegan: UInt64) {
        let root = config.root
        let limit = NotSyncedEntries.limit
        let present = found.prefix(limit).filter { entry in
            if entry.reason == .invalidName { return true }
            do {
                let status = try FileSystem.status(root + "/" + entry.path)
                return entry.reason != .specialFile || status.kind == .other  // not replaced by a file meanwhile
            } catch let error as SystemError {
                return !(error.isNotFound || error.isNotDirectory)  // cannot stat it either: still not synced
            } catch {
                return true
            }
        } + found.dropFirst(limit)
        let new = sync.notSynced.replace(below: directory, with: present, began: scanBegan)
        for entry in new.prefix(Node.notSyncedLogLimit) {
            logger.log(level: sync.notSynced.logDue(entry.path, now: loop.now) ? .info : .debug, "not syncing \(entry)")
        }
        if new.count > Node.notSyncedLogLimit {
            logger.info("not syncing \(new.count - Node.notSyncedLogLimit) more entries (FIFOs, sockets, device nodes, names that are not UTF-8, unreadable directories); `nsyncd status` lists the first")
        }
    }
}
