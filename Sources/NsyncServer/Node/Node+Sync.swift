#if canImport(Glibc)
import Glibc
#endif
import Collections
import Logging

/// The node's sync machinery that is not the reconciler's pure logic: the
/// watcher, queued observations and installs, retry timers, manifest saving.
/// Loop thread only.
struct SyncState {
    let root: String
    var watcher: Watcher?
    var poll: Poll?
    var ignore = IgnoreRules.defaults
    /// Paths to stat/hash in the next observation job.
    var toObserve = PathSet()
    /// New names of a directory renamed here: looked at once `toObserve`
    /// (which holds the old names) is done, so that the old names'
    /// deletions reach the index first and the other nodes move their own
    /// copies instead of fetching the new names.
    var toObserveAfter = PathSet()
    /// When `toObserveAfter` was last empty (loop ms).
    var toObserveAfterSince: UInt64 = 0
    var observing = PathSet()
    /// Paths in `observing` whose folder was moved away or removed while
    /// their look ran: its result is dropped, and a look queued after it says.
    var staleLooks = PathSet()
    var observeJobs = 0
    var observeScheduled = false
    /// Files still being written: looked at again once they settle.
    var settling = PathMap<LoopTimer>()
    /// Files that keep changing without a pause (`Node.busyWriterFirstLook`).
    var busyWriters = PathMap<BusyWriter>()
    var installs: [InstallItem] = []
    var installing = false
    /// Install batches started so far: a look that overlapped one can have
    /// seen a read-only directory while the batch briefly made it writable.
    var installBatches: UInt64 = 0
    /// Directories to look at again once the running install batch ends.
    var lookAfterInstall = PathSet()
    var installScheduled = false
    var retry = PathSet()
    var retryTimer: LoopTimer?
    /// Downloads verified whose install then failed (transiently): the
    /// retry installs them again instead of fetching the bytes again.
    var verifiedDownloads = PathMap<Fetcher.Fetched>()
    /// Paths whose install has failed for a while: retried less often.
    var slowRetry = PathSet()
    var slowRetryTimer: LoopTimer?
    var timers: [LoopTimer] = []
    var scanning = false
    /// A rescan asked for while `scanning` (its reason): runs after.
    var rescanAfterScan: String?
    var scanProgress: NodeStatus.Scan?
    /// Paths the last scan found changed and that are not yet looked at.
    var scanPending = PathSet()
    /// Until the start-up scan's walk ends, what is on disk at a path the
    /// manifest does not know is unknown (a node seeded with the cluster's
    /// files before its first start has them all): fetches of such paths
    /// wait for the walk, then go only where it found nothing to look at.
    var startupWalk = true
    var fetchesAfterWalk: [(path: String, version: UInt64)] = []
    var scanStartedAt: UInt64 = 0
    /// When the last walk of the tree ended, and how long it took (loop ms).
    var scanEndedAt: UInt64 = 0
    var scanWalkMilliseconds: UInt64 = 0
    /// The rescan a change to a hard-linked file asked for, and the last
    /// stat hashed of each hard-linked inode (`Node+Scan`).
    var hardLinkRescan: LoopTimer?
    var hardLinkStats: [UInt64: HardLinkStat] = [:]
    struct HardLinkStat: Equatable {
        var size: UInt64
        var mtime: Int64
    }
    var scanLoggedAt: UInt64 = 0
    var flushScheduled = false
    /// A turn of the loop will drain the watcher, which is listing a tree.
    var watcherDrainScheduled = false
    /// Directories deleted elsewhere and kept here for what they hold
    /// (`Node+Kept`), by path.
    var keptDirectories: [String: KeptDirectories.Identity] = [:]
    var keptDirectorySweep: LoopTimer?
    /// What is here and does not sync (special files, names that are not
    /// UTF-8, unreadable directories), for the log and status.
    var notSynced = NotSyncedEntries()
    /// Install journal entries whose path held nothing at start-up
    /// (`Node.restoreJournaledInstallsGone`).
    var journaledInstallsGone: [InstallJournal.Entry] = []
    /// The `.nsyncignore` bytes in force (empty for none), and what is
    /// wrong with the file when it cannot be used (said once).
    var ignoreBytes: [UInt8] = []
    /// Looks for a `.nsyncignore` that went once more before the defaults apply.
    var ignoreGoneCheck: LoopTimer?
    var ignoreFileTrouble: String?
    /// Removals seen one after another, each within `Node.removalQuiet` of
    /// the last: how many, since when, the last one (loop ms).
    var removals = (count: 0, since: UInt64(0), last: UInt64(0))
    var cleanupScheduled = false
    var manifestSaving = false
    /// A manifest save waits for the install batch running now.
    var manifestSaveWanted = false
    /// When the manifest was last encoded (loop ms), and how long that took
    /// the loop (ms): the next save waits `Node.manifestSaveSpacing` times as long.
    var manifestEncoded = (at: UInt64(0), ms: UInt64(0))
    /// When a fetch failing on this node's disk was last reported as an error (loop ms).
    var localFetchFailureReportedAt: UInt64?
    /// Fetches that failed on the holders' side (refused, cut off, wrong
    /// bytes) and are retried: path -> the version, why, since when (loop ms).
    var fetchTrouble: [String: (version: UInt64, why: String, since: UInt64)] = [:]
    /// When files that cannot be fetched were last warned about, and last
    /// looked for (loop ms).
    var unavailableWarnedAt: UInt64 = 0
    var unavailableCheckedAt: UInt64 = 0
    /// Large files being hashed for their announcement, offered to the
    /// peers meanwhile (served as version 0 for a while): path -> offer.
    var offers: [String: (size: UInt64, mtime: Int64, at: UInt64)] = [:]
    /// Files the index deleted here, kept a while under `.nsync/tmp` by
    /// their bytes: a file renamed elsewhere whose new name commits later
    /// is moved from there instead of fetched (`Node+Moves`).
    var kept: [FileContent: [KeptFile]] = [:]
    var keptCount: Int { kept.values.reduce(0) { $0 + $1.count } }
    /// Fetches done as local copies (`Node+Moves`), waiting and running.
    var localCopies: Deque<(record: FileRecord, expected: LocalFile?, source: String)> = []
    var localCopiesRunning = 0
    var keptPurgeTimer: LoopTimer?
    /// Bytes of the files the running install batch deletes (and keeps),
    /// and the fetches of such bytes that wait for it to end.
    var removalsRunning: [FileContent: Int] = [:]
    var fetchesAwaitingRemovals: [SyncAction] = []
    /// New paths of a rename here -> what the old path held and when the
    /// rename was seen: if the stat still matches, its hash is reused.
    var renameHints = PathMap<(local: LocalFile, at: UInt64)>()
    var renameHintsPurgedAt: UInt64 = 0
    /// The applied index at the last memory release, at the last 1 s tick,
    /// and when the release ran (loop ms).
    var appliedAtLastRelease: UInt64 = 0
    var appliedAtLastTick: UInt64 = 0
    var lastReleaseAt: UInt64 = 0

    init(root: String) { self.root = root }

    /// A file changing without a pause: since when (the burst's start, or
    /// the end of the last look), how long until it is looked at anyway,
    /// and when that look began while it runs (loop ms).
    struct BusyWriter {
        var since: UInt64
        var wait: UInt64
        var lookStartedAt: UInt64?
    }

    /// An entry whose burst is over: no settle timer, no look running, and
    /// quiet since (its writer paused; a new burst starts afresh).
    func isStale(_ busy: BusyWriter, _ path: String, now: UInt64) -> Bool {
        settling[path] == nil && busy.lookStartedAt == nil && now - min(busy.since, now) > Node.settleMilliseconds
    }

    var isBusy: Bool { installing || observeJobs > 0 || manifestSaving }

    mutating func stopWatching() {
        poll?.close()
        poll = nil
        watcher?.close()
        watcher = nil
        for t in settling.values { t.close() }
        settling.removeAll()
        busyWriters.removeAll()
        retryTimer?.close()
        slowRetryTimer?.close()
        hardLinkRescan?.close()
        hardLinkRescan = nil
        for t in timers { t.close() }
    }
}

/// One local change to make on disk, with the state the reconciler expects there.
enum InstallItem {
    case file(Fetcher.Fetched)
    case directory(FileRecord, expected: LocalFile?)
    case symlink(FileRecord, expected: LocalFile?)
    case modificationTime(FileRecord, expected: LocalFile)
    case remove(path: String, version: UInt64, expected: LocalFile)
    case conflict(path: String, expected: LocalFile)
    /// A file the index deleted here has the bytes a new record wants
    /// elsewhere (a rename on another node): moved there, nothing fetched.
    case move(LocalMove)

    var path: String {
        switch self {
        case .file(let f): f.record.path
        case .directory(let r, _), .symlink(let r, _): r.path
        case .modificationTime(let r, _): r.path
        case .remove(let p, _, _), .conflict(let p, _): p
        case .move(let m): m.record.path
        }
    }
}


/// What an install job did with one item.
enum InstallResult {
    case installed(path: String, version: UInt64, local: LocalFile?)
    case failed(path: String, version: UInt64, InstallFailure)
    case conflictCopied(path: String, copy: String, local: LocalFile?)
    case conflictFailed(path: String, String)
    /// The file changed again after the look that found the conflict: no
    /// copy is made now; the look its change asks for decides again.
    case conflictChangedAgain(path: String)
    /// A file deleted as the index says, its bytes kept at `at` (under
    /// `.nsync/tmp`) for a while: `content` is what it held, `stamp` its
    /// status there (a move from it checks that nothing changed it since).
    case kept(path: String, version: UInt64, at: String, content: LocalFile, stamp: FileStatus)
}

extension Node {
    /// How long a file that is written without being closed must stay
    /// unchanged before it is announced.
    static let settleMilliseconds: UInt64 = 300
    /// A file that never stays unchanged that long (a log appended all the
    /// time) is looked at anyway after 2 s, then 4, 8, ... at most 60 s after
    /// the last look ended (and never sooner than three times that look
    /// took): what it holds then is announced if it holds still while it is
    /// hashed. The growing waits keep the hashing of a file written for
    /// minutes (a slow download) to a few times its final size.
    static let busyWriterFirstLook: UInt64 = 2_000
    static let busyWriterMaximumWait: UInt64 = 60_000

    // MARK: start

    /// Loads what this node knew of its disk before Raft replays anything:
    /// the saved manifest, brought up to date with the install journal.
    func loadManifest() {
        let manifestPath = stateDirectory + "/manifest"
        var manifest = PathMap<ManifestEntry>()
        if let bytes = try? FileDescriptor.readWholeFile(manifestPath) {
            do {
                manifest = try Manifest.decode(bytes)
            } catch {
                logger.warning("ignoring unreadable \(manifestPath) (\(error)): local files will be compared by content")
            }
        }
        let replayed = InstallJournal.replay(installJournalPath, root: config.root, onto: &manifest,
                                             gone: &sync.journaledInstallsGone)
        if replayed > 0 {
            logger.info("\(replayed) files installed after the last manifest save are known from \(installJournalPath)")
        }
        if !manifest.isEmpty { reconciler = Reconciler(node: config.name, manifest: manifest) }
    }

    var installJournalPath: String { stateDirectory + "/installs" }

    /// Files installed after the last manifest save whose path holds
    /// nothing now: those this node announced holding (the index says so)
    /// were installed and then removed or renamed away by the user before
    /// a crash (`mv doc docA` then kill -9, within the second before the
    /// next save). Known to the manifest again, the start-up scan finds
    /// them gone and announces it; unknown, they were fetched back and the
    /// user's removal undone on every node. Before the scan; with the index
    /// as replayed (a node that waits for its peers' names replays later,
    /// and fetches them back as before).
    func restoreJournaledInstallsGone() {
        let gone = sync.journaledInstallsGone
        sync.journaledInstallsGone.removeAll()
        var restored = 0
        var parents = Set<String>()
        for entry in gone {
            guard let record = index.record(at: entry.path), record.kind == .file, record.version == entry.version,
                  record.holders.contains(config.name), reconciler.manifest[entry.path]?.version ?? 0 < entry.version
            else { continue }
            reconciler.knownInstalled(entry.path, ManifestEntry(version: entry.version, local: entry.local))
            restored += 1
            var parent = Substring(entry.path)
            while let slash = parent.lastIndex(of: "/") {
                parent = parent[..<slash]
                guard parents.insert(String(parent)).inserted else { break }
            }
        }
        // Their folders, made by those installs, are in no journal: those
        // the index says this node held and that are gone went with them.
        for directory in parents where reconciler.manifest[directory] == nil {
            guard let record = index.record(at: directory), record.kind == .directory,
                  record.holders.contains(config.name) else { continue }
            do {
                _ = try FileSystem.status(config.root + "/" + directory)
            } catch let error as SystemError where error.isNotFound || error.isNotDirectory {
                reconciler.knownInstalled(directory, ManifestEntry(version: record.version, local: LocalFile(
                    kind: .directory, mode: record.mode, mtime: record.mtime)))
            } catch {
                continue
            }
        }
        if restored > 0 {
            logger.info("\(restored) files installed after the last manifest save are gone from their paths: the scan announces it")
        }
    }

    /// Directories and symlinks this node made for the cluster after its
    /// last manifest save (no journal holds them): those on disk as the
    /// index, as replayed, has them become known to the manifest at that
    /// version (`Reconciler+UnsavedInstalls`).
    /// Before the scan and before any entry from the others is applied:
    /// after it, a deletion of one of them made while the node was down
    /// would find it unknown and announce it back. A few stats on the loop
    /// (a manifest lags by about a second), as `restoreJournaledInstallsGone`.
    func restoreUnsavedInstalls() {
        var adopted = 0
        for record in reconciler.unsavedInstallCandidates(in: index) {
            let full = config.root + "/" + record.path
            guard let status = try? FileSystem.status(full) else { continue }
            let found: LocalFile
            switch status.kind {
            case .directory:
                found = LocalFile(kind: .directory, mode: status.mode, mtime: status.modificationTime, inode: status.inode)
            case .symlink:
                guard let target = try? FileSystem.readLink(full) else { continue }
                found = LocalFile(kind: .symlink, mode: 0, mtime: status.modificationTime, target: target, inode: status.inode)
            case .regular, .other:
                continue
            }
            if reconciler.adoptUnsavedInstall(record, found: found) { adopted += 1 }
        }
        if adopted > 0 {
            logger.info("\(adopted) directories or symlinks installed after the last manifest save are known from the index")
        }
    }

    func startSync() throws {
        guard let watcher = sync.watcher else { throw StartupError.state("cannot watch \(config.root): no watcher") }
        do {
            let poll = try Poll(loop: loop, fd: watcher.fd)
            try poll.start(.readable) { [unowned self] _ in drainWatcher() }
            sync.poll = poll
        } catch {
            throw StartupError.state("cannot watch \(config.root): \(error)")
        }
        // The walk in openWatcher() may have run out of watches: report it
        // (and start the periodic rescans) now, not at the first change.
        drainWatcher()
        let saver = LoopTimer(loop: loop)
        saver.start(after: 1_000, repeating: 1_000) { [unowned self] in
            guard stateDirectoryIsIntact() else { return }
            saveManifest(synchronously: false)
            fetcher.expireSpeculations { [unowned self] path, size, digest in
                // The very bytes of the copy, announced, and held here already.
                guard let record = self.index.record(at: path), record.kind == .file, record.size == size,
                      record.hash == digest else { return false }
                return self.reconciler.manifest[path]?.version == record.version
            }
            fetcher.checkStalls()
            sync.offers = sync.offers.filter { loop.now < $0.value.at + config.tuning.offerLifetime }
            discardStalePartialFiles()
            releaseMemoryIfIdle()
            warnOfUnavailableFiles()
            if !sync.busyWriters.isEmpty {
                let now = loop.now
                let stale = sync.busyWriters.filter { sync.isStale($0.value, $0.key, now: now) }.map(\.key)
                for path in stale { sync.busyWriters[path] = nil }
            }
        }
        sync.timers.append(saver)
        loadKeptDirectories()
        restoreJournaledInstallsGone()
        restoreUnsavedInstalls()
        rescan(reason: "start-up")
        startPeriodicRescans(every: config.tuning.rescanInterval)
    }

    /// Handles what the watcher saw; while it lists an arrived tree, again
    /// on the next turn of the loop (after that turn's I/O and timers).
    func drainWatcher() {
        guard let watcher = sync.watcher else { return }
        handle(watcher.drain())
        guard watcher.hasUnlistedDirectories, !sync.watcherDrainScheduled, !stopping else { return }
        sync.watcherDrainScheduled = true
        loop.nextTurn { [unowned self] in
            sync.watcherDrainScheduled = false
            drainWatcher()
        }
    }

    /// Watches PATH (one inotify watch per directory) while the node is
    /// still being created, so running out of inotify instances or of the
    /// watch for PATH itself fails start-up with one line.
    func openWatcher() throws {
        sync.ignore = loadIgnoreRules()
        do {
            sync.watcher = try Watcher(root: config.root, ignore: sync.ignore)
        } catch let error as SystemError where error.isNoSpace {
            throw StartupError.watchLimitTooLow(path: config.root, setting: "fs.inotify.max_user_watches",
                                                current: Inotify.kernelLimit("max_user_watches"))
        } catch let error as SystemError where error.errno == EMFILE {
            throw StartupError.watchLimitTooLow(path: config.root, setting: "fs.inotify.max_user_instances",
                                                current: Inotify.kernelLimit("max_user_instances"))
        } catch {
            throw StartupError.state("cannot watch \(config.root): \(error)")
        }
    }

    func setUpTransfers() {
        let leftovers = Set((try? FileDescriptor.listDirectory(temporaryDirectory)) ?? []).filter { $0.hasSuffix(".part") }
        for name in (try? FileDescriptor.listDirectory(temporaryDirectory)) ?? [] where !name.hasSuffix(".part") {
            _ = try? FileDescriptor.removeIfPresent(temporaryDirectory + "/" + name)
        }
        fetcher = Fetcher(loop: loop, root: config.root, temporaryDirectory: temporaryDirectory, leftovers: leftovers, logger: logger, hooks: .init(
            fetched: { [unowned self] fetched in queueInstall(.file(fetched)) },
            failed: { [unowned self] record, why, local in
                if local {
                    reportLocalFetchFailure(record.path, why)
                } else {
                    logger.info("fetch of \(record.path) did not finish: \(why)")
                    let since = sync.fetchTrouble[record.path].flatMap { $0.version == record.version ? $0.since : nil }
                    sync.fetchTrouble[record.path] = (record.version, why, since ?? loop.now)
                }
                perform(reconciler.installFailed(record.path, version: record.version, .transient(why), index: index))
            },
            answerOffer: { [unowned self] offer in
                guard !sync.ignore.isIgnored(path: offer.path, isDirectory: false) else { return .decline }
                // Not looked at here yet (the start-up scan): most likely the
                // same file, seeded on every node before the first start.
                if lookPending(offer.path) || (sync.startupWalk && reconciler.manifest[offer.path] == nil) { return .decline }
                // The version the index has already: fetched the usual way.
                if let record = index.record(at: offer.path), record.kind == .file, record.size == offer.size,
                   record.mtime == offer.mtime {
                    return .decline
                }
                if let local = reconciler.manifest[offer.path]?.local, local.kind == .file {
                    // Size and mtime as here: most likely these very bytes
                    // (a node seeded with them, a rescan).
                    if local.size == offer.size && local.mtime == offer.mtime { return .decline }
                    // The same size here or smaller: most likely edited in
                    // place (or only touched), and its fetch moves only the
                    // blocks that differ (`Fetcher+Blocks`); the held blocks
                    // are hashed for it meanwhile. Larger: most likely
                    // appended to, and its fetch moves only the new bytes
                    // (`Fetcher+Extend`). Neither is worth a speculative copy.
                    if Fetcher.mayMatchBlocks(local, toSize: offer.size) { return .hashHeld(local) }
                    if local.size == offer.size || local.size >= Fetcher.extendMinimumSize { return .decline }
                }
                // A file of that size elsewhere here: most likely a copy or a
                // move, made from bytes this node holds (`copyLocally`,
                // `pairMoves`). A different file of the same size only loses
                // the overlap with the origin's hashing.
                if reconciler.largeFiles.keys.contains(where: { $0.size == offer.size }) { return .decline }
                return .copy
            },
            heldFile: { [unowned self] path in reconciler.manifest[path]?.local },
            holders: { [unowned self] record in
                guard let current = index.record(at: record.path), current.version == record.version else {
                    return record.holders
                }
                return current.holders
            },
            ownBlocksSettled: { [unowned self] in transferServer.knownBlocksSettled() }))
        fetcher.stallLimit = config.tuning.fetchStallLimit
        transferServer = TransferServer(loop: loop, root: config.root, chunkSize: config.tuning.chunkSize, logger: logger) {
            [unowned self] path, version in
            if version == 0 {
                // Version 0: an offered file, before its announcement.
                guard let offer = sync.offers[path], loop.now < offer.at + config.tuning.offerLifetime else {
                    // Or one this node is copying early: relayed as it arrives.
                    if let feed = fetcher.relayFeed(path: path, version: 0) { return .relay(feed) }
                    return .refuse(.init(status: .notFound, message: "not offered by this node"))
                }
                return .serve(size: offer.size)
            }
            if version > index.appliedIndex { return .notYet }
            guard let record = index.record(at: path), record.kind == .file else {
                return .refuse(.init(status: .notFound, message: "not a file in the index"))
            }
            guard let held = reconciler.manifest[path], held.version == version, let local = held.local,
                  local.kind == .file else {
                // Being received here: relayed as it arrives.
                if let feed = fetcher.relayFeed(path: path, version: version) { return .relay(feed) }
                // Committed here but maybe not yet announced as held: the
                // origin's own put is applied before its manifest knows it.
                if record.version == version, record.origin == config.name, reconciler.isAnnouncing(path) { return .notYet }
                return .refuse(.init(status: .versionNotHeld, message: "version \(version) is not held here (current \(record.version))"))
            }
            return .serve(size: local.size, hash: local.hash)
        }
        transferServer.knownBlocks = { [unowned self] hash, blockSize in
            fetcher.blockMemory.digests(for: hash, blockSize: blockSize)
        }
        transferServer.knownBlocksPending = { [unowned self] hash, blockSize in
            fetcher.ownBlocksPending(for: hash, blockSize: blockSize)
        }
        transferServer.heldFileNotAsKnown = { [unowned self] path in
            guard !lookPending(path) else { return }
            logger.debug("\(path) is not on disk as this node announced it: looking at it again")
            observe(path)
        }
    }

    /// A `.part` is resumed when its version is fetched again; one of a
    /// version changed or deleted meanwhile (while this node was down, or
    /// while its transfer waited for a retry) never is, and would stay in
    /// `.nsync/tmp` forever. Once this node has nothing to fetch or install
    /// none can be in use: everything there goes. (A fetch starting after the
    /// sweep is of a newer version, so under another name.)
    private func discardStalePartialFiles() {
        guard fetcher.mayHoldStalePartials, isSettled().settled else { return }
        fetcher.mayHoldStalePartials = false
        let directory = temporaryDirectory
        loop.queueWork({ (try? FileDescriptor.listDirectory(directory)) ?? [] }, completion: { [unowned self] names in
            guard !names.isEmpty else { return }
            guard isSettled().settled else {
                fetcher.mayHoldStalePartials = true
                return
            }
            // A verified download waiting for its install to be retried, if
            // its version is still current (else it goes with the rest).
            for (path, download) in sync.verifiedDownloads where index.record(at: path)?.version != download.record.version
                || reconciler.manifest[path]?.version == download.record.version {
                sync.verifiedDownloads[path] = nil  // superseded, or that version is here already
            }
            let waiting = sync.verifiedDownloads.map { $0.value.temporaryPath.split(separator: "/").last.map(String.init) ?? "" }
            let inUse = fetcher.speculativeFiles.union(keptFileNames).union(waiting)
            // An early copy cut off by a restart waits a while for the
            // announcement it was taken ahead of (then a fetch resumes it).
            let youngOffers = loop.now < startedAt + config.tuning.offerLifetime
            var kept: Set<String> = []
            var removed = 0
            for name in names where !inUse.contains(name) {
                // Or one whose file is offered again now (its origin hashes a large file for long).
                let offeredLately = fetcher.leftoverOffers[name].map { loop.now < $0 + config.tuning.offerLifetime } ?? false
                if name.hasPrefix("offered-"), youngOffers || offeredLately {
                    kept.insert(name)
                } else {
                    FileSystemCleanup.remove(directory + "/" + name, on: loop)
                    removed += 1
                }
            }
            if !kept.isEmpty { fetcher.mayHoldStalePartials = true }
            fetcher.forgetLeftovers(except: kept)
            if removed > 0 {
                logger.info("removed \(removed) partial downloads of versions no longer current from \(directory)")
            }
        })
    }

    /// Once a burst of changes is over (nothing to fetch or install, the
    /// index still for a moment), hands freed heap memory back to the
    /// kernel, at most every 10 s: what a big sync allocated on the way
    /// would otherwise stay resident for the life of the process.
    private func releaseMemoryIfIdle() {
        let applied = index.appliedIndex
        guard applied != sync.appliedAtLastRelease, loop.now >= sync.lastReleaseAt + 10_000 else { return }
        let idle = !sync.isBusy && sync.installs.isEmpty && sync.toObserve.isEmpty && sync.toObserveAfter.isEmpty && !sync.scanning
            && !reconciler.hasPendingWork && fetcher.inFlight == 0
        guard applied == sync.appliedAtLastTick, idle else {
            sync.appliedAtLastTick = applied
            return
        }
        sync.appliedAtLastRelease = applied
        sync.lastReleaseAt = loop.now
        loop.queueWork({ ProcessMemory.releaseFreeMemory() }, completion: { _ in })
    }

    /// How long an offered file may be fetched as version 0 (ms): enough
    /// to hash a large file and commit its announcement.
    static let defaultOfferLifetime: UInt64 = 60_000

    /// Offers a large file this node is about to hash to every peer, which
    /// may copy it meanwhile (`Fetcher.speculate`).
    func offer(_ path: String, _ local: LocalFile) {
        guard !stopping else { return }
        // Size and mtime of the index's version: most likely that version
        // (just installed here, or looked at again), not a new one.
        if let record = index.record(at: path), record.kind == .file, record.size == local.size,
           record.mtime == local.mtime {
            return
        }
        sync.offers[path] = (local.size, local.mtime, loop.now)
        logger.debug("offering \(path) (\(NodeStatus.bytes(local.size))) to the peers while hashing it")
        transferServer.broadcast(FileOffer(path: path, size: local.size, mtime: local.mtime))
        // Edited in place, most likely: the other nodes hold the index's
        // version and will ask by blocks of its size (`Fetcher+Blocks`).
        if let record = index.record(at: path), record.kind == .file, record.holders.contains(where: { $0 != config.name }),
           Fetcher.mayMatchBlocks(heldSize: record.size, toSize: local.size),
           let blockSize = BlockDigests.blockSize(for: record.size) {
            fetcher.hashOwnBlocks(path, local, blockSize: blockSize)
        }
    }

    /// This node's disk failing a fetch (full, most likely) needs the
    /// operator: an error in status and the log, at most once a minute, as
    /// the fetch is retried every second meanwhile.
    private func reportLocalFetchFailure(_ path: String, _ why: String) {
        // This disk is short of room (most likely): deleted files kept for
        // renames give theirs back now.
        purgeKeptFiles(olderThan: 0)
        let now = loop.now
        if let last = sync.localFetchFailureReportedAt, now - last < 60_000 {
            logger.info("fetch of \(path) failed again: \(why)")
            return
        }
        sync.localFetchFailureReportedAt = now
        recordError("fetch of \(path) failed on this node's disk: \(why)")
    }

    /// The rules of PATH's `.nsyncignore` at start-up (the defaults when
    /// there is none). One that cannot be used (`readIgnoreFile`) is an
    /// error, and the rules last used here (kept in `.nsync`) apply, so
    /// that what they ignored does not start syncing.
    func loadIgnoreRules() -> IgnoreRules {
        switch readIgnoreFile() {
        case .success(let bytes):
            useIgnoreRules(bytes ?? [])
        case .failure(let error):
            let kept = try? FileDescriptor.readWholeFile(keptIgnoreRulesPath)
            reportIgnoreFileTrouble(error, consequence: kept == nil
                ? "the default rules apply (no rules were kept from an earlier run)"
                : "the rules this node last used apply")
            sync.ignoreBytes = kept ?? []
        }
        return IgnoreRules(text: String(decoding: sync.ignoreBytes, as: UTF8.self))
    }

    /// `.nsyncignore` changed: its rules apply when they differ from those
    /// in force (by bytes: names are bytes, so are rules); one that cannot
    /// be used leaves those in force (an error). Gone, it is looked for
    /// again `ignoreFileGoneWait` later before the defaults apply: deleted
    /// and made again (as a symlink, say), the defaults would be in force
    /// meanwhile. Not while `.nsync` is being removed (`rm -rf PATH` takes
    /// `.nsyncignore` first): its kept copy would be written into it.
    private func reloadIgnoreRules(gone wasGone: Bool = false) {
        switch readIgnoreFile() {
        case .success(nil) where !wasGone && !sync.ignoreBytes.isEmpty:
            sync.ignoreGoneCheck?.close()
            sync.ignoreGoneCheck = loop.schedule(after: Node.ignoreFileGoneWait) { [unowned self] in
                sync.ignoreGoneCheck = nil
                reloadIgnoreRules(gone: true)
            }
        case .success(let bytes):
            sync.ignoreFileTrouble = nil
            guard bytes ?? [] != sync.ignoreBytes, stateDirectoryIsIntact() else { return }
            useIgnoreRules(bytes ?? [])
            sync.ignore = IgnoreRules(text: String(decoding: sync.ignoreBytes, as: UTF8.self))
            handle(sync.watcher?.updateIgnoreRules(sync.ignore) ?? [])
        case .failure(let error):
            reportIgnoreFileTrouble(error, consequence: "the rules in force stay")
        }
    }

    private var keptIgnoreRulesPath: String { config.root + "/.nsync/ignore-rules" }
    static let ignoreFileGoneWait: UInt64 = 1_000

    /// The bytes of `.nsyncignore` (nil: there is none). It is written by
    /// users and synced, and read on the loop: only a regular file of at
    /// most `IgnoreRules.maxFileBytes`, never a FIFO (it would block), never
    /// through a symlink (a change to its target would go unnoticed, and
    /// it may lead anywhere).
    private func readIgnoreFile() -> Result<[UInt8]?, Error> {
        do {
            return .success(try FileDescriptor.readRegularFile(config.root + "/" + IgnoreRules.fileName,
                                                               limit: IgnoreRules.maxFileBytes))
        } catch let error as SystemError where error.isNotFound {
            return .success(nil)
        } catch {
            return .failure(error)
        }
    }

    /// Puts `bytes` in force and keeps them, durably, in `.nsync` for a
    /// start-up that finds `.nsyncignore` unusable.
    private func useIgnoreRules(_ bytes: [UInt8]) {
        sync.ignoreFileTrouble = nil
        sync.ignoreBytes = bytes
        guard (try? FileDescriptor.readWholeFile(keptIgnoreRulesPath)) != bytes else { return }
        do {
            let temporary = keptIgnoreRulesPath + ".new"
            let fd = try FileDescriptor.open(temporary, .writeOnly, options: [.create, .truncate], permissions: 0o600)
            try fd.closeAfter {
                try fd.write(all: bytes)
                try fd.sync()
            }
            try FileSystem.rename(temporary, to: keptIgnoreRulesPath)
        } catch {
            logger.warning("cannot keep the ignore rules in \(keptIgnoreRulesPath): \(error)")
        }
    }

    /// Said as an error once per kind of trouble (a rescan looks at an
    /// unusable `.nsyncignore` again each time).
    private func reportIgnoreFileTrouble(_ error: Error, consequence: String) {
        let message = "\(IgnoreRules.fileName) is not used, \(consequence): \(error); make it a regular file of at most \(IgnoreRules.maxFileBytes / 1024) KiB, not a symlink"
        if sync.ignoreFileTrouble == message {
            logger.debug("\(message)")
        } else {
            sync.ignoreFileTrouble = message
            recordError(message)
        }
    }

    // MARK: watching

    func handle(_ events: [WatchEvent]) {
        for event in events {
            switch event {
            case .changed(let path):
                sync.settling.removeValue(forKey: path)?.close()
                sync.busyWriters[path] = nil
                observe(path)
            case .modified(let path):
                settle(path)
            case let .removed(path, isDirectory):
                forgetKeptDirectories(at: path)
                sync.notSynced.remove(path, isDirectory: isDirectory)
                // The user's, not an install's (the manifest already says
                // absent, or the install is under way).
                if (reconciler.manifest[path]?.local ?? nil) != nil, reconciler.installing[path] == nil {
                    noteRemovals(1)
                }
                sync.settling.removeValue(forKey: path)?.close()
                sync.busyWriters[path] = nil
                if isDirectory { observeTree(path) } else { observe(path) }
            case let .renamed(from, to, isDirectory):
                forgetKeptDirectories(at: from)
                sync.notSynced.remove(from, isDirectory: isDirectory)
                noteRename(from: from, to: to, isDirectory: isDirectory)
                if isDirectory {
                    observeTree(from)
                    observe(to)
                    scanSubtree(to)
                } else {
                    observe(from)
                    observe(to)
                }
            case .rescanNeeded(let why):
                // Events were lost, removals perhaps among them (a large
                // rm -rf overflows the queue): held back as a burst.
                noteRemovals(Node.removalBurst)
                logger.warning("rescanning: \(why)")
                rescan(reason: why, queued: true)
            case .watchLimitReached(let message):
                recordError(message)
                startWatchLimitRescans()
            case .notSynced(let entry):
                noteNotSynced(entry)
                // Renamed over a synced file: a look announces that file's deletion.
                if entry.reason == .specialFile, specialFileReplacesSynced(entry.path) { observe(entry.path) }
            case .notSyncedGone(let path):
                sync.notSynced.remove(path)
            }
        }
    }

    /// Looks at `path` again once it stopped changing for a while, or,
    /// if it never does, from time to time anyway (`busyWriterFirstLook`).
    private func settle(_ path: String) {
        let now = loop.now
        var busy = sync.busyWriters[path] ?? SyncState.BusyWriter(since: now, wait: Node.busyWriterFirstLook)
        // (Before the settle timer goes: a pending timer means the burst goes on.)
        if sync.isStale(busy, path, now: now) { busy = SyncState.BusyWriter(since: now, wait: Node.busyWriterFirstLook) }
        sync.settling.removeValue(forKey: path)?.close()
        if busy.lookStartedAt == nil, now - busy.since >= busy.wait,
           !sync.toObserve.contains(path), !sync.observing.contains(path) {
            busy.lookStartedAt = now
            sync.busyWriters[path] = busy
            logger.debug("\(path) has changed for \(busy.wait / 1000) s without a pause: looking at it anyway")
            observe(path)
            return
        }
        sync.busyWriters[path] = busy
        sync.settling[path] = loop.schedule(after: Node.settleMilliseconds) { [unowned self] in
            sync.settling[path] = nil
            sync.busyWriters[path] = nil
            observe(path)
        }
    }

    /// A look at a busy writer's file finished: the next waits twice as
    /// long, counted from now, and at least three times what this one took
    /// (a large file's hash), so looks never run back to back.
    private func busyWriterLooked(_ path: String) {
        guard var busy = sync.busyWriters[path], let started = busy.lookStartedAt else { return }
        let now = loop.now
        busy.lookStartedAt = nil
        busy.since = now
        busy.wait = max(min(busy.wait * 2, Node.busyWriterMaximumWait), 3 * (now - min(started, now)))
        sync.busyWriters[path] = busy
    }

    /// Whether a FIFO, socket or device found at `path` stands where this
    /// node held, or is announcing, a synced entry. Not `.nsyncignore`: one
    /// that cannot be read keeps the rules in force here, so it is no
    /// deletion of the rules for the others either.
    private func specialFileReplacesSynced(_ path: String) -> Bool {
        path != IgnoreRules.fileName && ((reconciler.manifest[path]?.local ?? nil) != nil || reconciler.isAnnouncing(path))
    }

    /// `path` and everything the manifest knows below it (a removed or moved-away directory).
    private func observeTree(_ path: String) {
        observe(path)
        // Nothing can be known below a file or a link: no walk of the manifest.
        if let local = reconciler.manifest[path]?.local, local.kind != .directory { return }
        for known in reconciler.pathsKnown(under: path) { observe(known) }
        // Looks running now below it (a large new file's hash): their result
        // tells of the file at its old name, in no manifest and no pending
        // put yet, so nothing above covers it. Announced, it followed the
        // folder's deletion: the other nodes installed it (making the folder
        // again) and could not remove the folder, and the writer "held" a
        // file it did not have, for good (a probe: 3 runs of 3). Its result
        // is dropped; a look after it says what is there now.
        let prefix = path + "/"
        for running in sync.observing where running.hasPrefix(prefix) {
            sync.staleLooks.insert(running)
            observe(running)
        }
    }

    /// A directory that appeared by rename (or became readable):
    /// everything inside is new here.
    private func scanSubtree(_ path: String) {
        let root = config.root
        let ignore = sync.ignore
        let began = sync.notSynced.scanBegins()
        loop.queueWork({ () -> ScanResult? in
            guard let status = try? FileSystem.status(root + "/" + path), status.kind == .directory else { return nil }
            return try? DirectoryScanner.scan(root: root, subtree: path, ignore: ignore)
        }, completion: { [unowned self] result in
            guard let result else { return }
            for entry in result.entries { observe(entry.path, after: true) }
            noteNotSynced(below: path, result.skipped, scanBegan: began)
        })
    }

    // MARK: observing

    /// Queues `path` to be stat'ed (and hashed if its stat changed);
    /// `after` the paths queued without it.
    func observe(_ path: String, after: Bool = false) {
        guard !stopping, IndexPath.violation(in: path) == nil,
              !sync.ignore.isIgnored(path: path, isDirectory: false) || path == IgnoreRules.fileName else {
            if sync.scanPending.remove(path) != nil { scanStepDone(0) }
            return
        }
        if path == IgnoreRules.fileName { reloadIgnoreRules() }
        if after && !sync.toObserve.contains(path) {
            if sync.toObserveAfter.isEmpty {
                // Not held up for long by a look that hashes a large file.
                sync.toObserveAfterSince = loop.now
                loop.schedule(after: Node.observeAfterWait) { [unowned self] in startObservations() }
            }
            sync.toObserveAfter.insert(path)
        } else {
            sync.toObserve.insert(path)
        }
        guard !sync.observeScheduled else { return }
        sync.observeScheduled = true
        loop.schedule(after: 0) { [unowned self] in
            sync.observeScheduled = false
            startObservations()
        }
    }

    /// Whether a look at `path` is queued or running (the start-up scan's,
    /// a watcher event's): what is on disk there is about to be known.
    func lookPending(_ path: String) -> Bool {
        sync.scanPending.contains(path) || sync.toObserve.contains(path) || sync.toObserveAfter.contains(path)
            || sync.observing.contains(path)
    }

    static let observeBatch = 1_024
    static let maxObserveJobs = 2
    /// How long the new names of a renamed directory wait for the looks at
    /// other paths still running (a large file's hash can take minutes).
    static let observeAfterWait: UInt64 = 500

    private func startObservations() {
        while sync.observeJobs < Node.maxObserveJobs, !sync.toObserve.isEmpty || !sync.toObserveAfter.isEmpty {
            var batch: [String] = []
            for path in sync.toObserve where !sync.observing.contains(path) {
                batch.append(path)
                if batch.count == Node.observeBatch { break }
            }
            if !sync.toObserveAfter.isEmpty, batch.isEmpty && sync.observeJobs == 0
                || loop.now >= sync.toObserveAfterSince + Node.observeAfterWait {
                // The first paths are all looked at (and their changes
                // proposed), or the later ones have had their time (a
                // watcher that keeps queueing looks must not starve them).
                for path in sync.toObserveAfter { sync.toObserve.insert(path) }
                sync.toObserveAfter.removeAll()
                continue
            }
            guard !batch.isEmpty else { return }
            for path in batch {
                sync.toObserve.remove(path)
                // Queued for later too: this look is that look. Left there,
                // the path stayed `lookPending` after this look, so a fetch
                // it decided was held back for a look again, queued at once
                // ahead of the later paths: the same paths stat'ed for ever
                // (100,000 times in 2 s, a probe's find) and the later ones,
                // a renamed folder's new names, never looked at or announced.
                sync.toObserveAfter.remove(path)
                sync.observing.insert(path)
            }
            sync.observeJobs += 1
            let known = batch.map { reconciler.manifest[$0]?.local ?? nil }
            let hints = batch.map { takeRenameHint($0) }
            let renamed = Set(zip(batch, hints).compactMap { $1 == nil ? nil : $0 })
            let root = config.root
            let loop = self.loop
            // A file looked at while its writer is still busy is no offer:
            // it is most likely changing under the look.
            let busy = Set(batch.filter { sync.busyWriters[$0]?.lookStartedAt != nil })
            let batchesBefore = sync.installing ? nil : sync.installBatches
            let beforeHashing: (String, LocalFile, UInt64) -> Void = { [weak self] path, local, linkCount in
                // On the pool. Its other names changed with it, unreported.
                if linkCount > 1 { _ = loop.execute { self?.rescanForHardLinks(local) } }
                // The loop sends the offer while this job hashes.
                guard local.size >= Fetcher.speculationMinimumSize, !busy.contains(path) else { return }
                _ = loop.execute { self?.offer(path, local) }
            }
            loop.queueWork({ batch.indices.map { i in
                LocalDisk.look(root: root, path: batch[i], known: known[i], hint: hints[i]) {
                    beforeHashing(batch[i], $0, $1)
                }
            } },
                           completion: { [unowned self] looks in
                sync.observeJobs -= 1
                var actions: [SyncAction] = []
                for (path, found) in zip(batch, looks) {
                    var look = found
                    if case .skipped = look {
                        noteNotSynced(SkippedEntry(path: path, reason: .specialFile))
                        // That file is gone here (rm x; mkfifo x): a deletion to
                        // announce. The special file itself stays, never replaced.
                        if specialFileReplacesSynced(path) { look = .found(nil) }
                    }
                    sync.observing.remove(path)
                    let stale = sync.staleLooks.remove(path) != nil
                    if busy.contains(path) { busyWriterLooked(path) }
                    if sync.scanPending.remove(path) != nil {
                        if case .found(let local?) = look { scanStepDone(local.size) } else { scanStepDone(0) }
                    }
                    // A directory listed as unreadable that a look can stat: its
                    // mode may have changed; a listing of it says.
                    if case .found(let local) = found, sync.notSynced.looked(path, isDirectory: local?.kind == .directory) {
                        scanSubtree(path)
                    }
                    switch look {
                    case .found where stale:
                        break  // its folder moved away meanwhile: looked at again (observeTree)
                    case .found(let local?) where batchesBefore != sync.installBatches
                        && mayBePassingMode(path, local):
                        // Not announced: look again once no install runs.
                        if sync.installing { sync.lookAfterInstall.insert(path) } else { observe(path) }
                    case .found(let local) where sync.keptDirectories[path] != nil
                        && stillKept(path, directoryInode: local?.kind == .directory ? local?.inode : nil):
                        break  // deleted elsewhere, kept here for what it holds: not announced
                    case .found(let local):
                        if let local { fetcher.ownVersionHashed(path, local) }
                        actions += reconciler.observed(path, local, index: index, renamed: renamed.contains(path))
                    case .changing:
                        settle(path)
                    case .skipped:
                        break  // noted above
                    case .failed(let why):
                        recordError("cannot read \(path): \(why); skipped")
                    }
                }
                perform(actions)
                flushSoon()
                if !sync.toObserve.isEmpty || !sync.toObserveAfter.isEmpty { startObservations() }
            })
        }
    }

    // MARK: acting

    /// Carries out the reconciler's actions.
    func perform(_ actions: [SyncAction]) {
        var actions = actions
        // Before moves and local copies, which would put bytes at these paths too.
        var lookFirst: [(path: String, version: UInt64)] = []
        actions.removeAll { action in
            if case let .makeDirectory(record, _) = action, sync.startupWalk, reconciler.manifest[record.path] == nil {
                // As a fetch below: a folder the manifest does not know may be
                // one this node had and the user removed just before a crash
                // (`restoreJournaledInstallsGone`); decided after the walk.
                sync.fetchesAfterWalk.append((record.path, record.version))
                return true
            }
            guard case let .fetch(record, _) = action else { return false }
            if sync.startupWalk, reconciler.manifest[record.path] == nil {
                // What is on disk here is not known before the start-up walk
                // ends: most likely the very bytes, on a node seeded with the
                // cluster's files before its first start. Decided again then.
                sync.fetchesAfterWalk.append((record.path, record.version))
                return true
            }
            if lookPending(record.path) {
                // A look at it is queued or running: it decides (hold,
                // conflict copy, or this fetch again).
                lookFirst.append((record.path, record.version))
                return true
            }
            return false
        }
        let moves = pairMoves(&actions)
        copyLocally(&actions)
        defer {
            // After the other installs: a directory made for a moved file first.
            for move in moves { queueInstall(.move(move)) }
            for held in lookFirst {
                perform(reconciler.installFailed(held.path, version: held.version, .localChanged, index: index))
            }
        }
        for action in actions {
            switch action {
            case let .fetch(record, expected):
                if let download = sync.verifiedDownloads.removeValue(forKey: record.path) {
                    if download.record.version == record.version, download.record.hash == record.hash,
                       FileDescriptor.exists(download.temporaryPath) {
                        queueInstall(.file(Fetcher.Fetched(record: record, expected: expected,
                                                           temporaryPath: download.temporaryPath)))
                        continue
                    }
                    FileSystemCleanup.remove(download.temporaryPath, on: loop)
                }
                fetcher.fetch(record, expected: expected)
            case let .makeDirectory(record, expected):
                queueInstall(.directory(record, expected: expected))
            case let .makeSymlink(record, expected):
                queueInstall(.symlink(record, expected: expected))
            case let .setModificationTime(record, expected):
                queueInstall(.modificationTime(record, expected: expected))
            case let .remove(path, version, expected):
                // Debug, not info: an rm -rf elsewhere is thousands of these.
                logger.debug("removing \(path): version \(version) of the index is a deletion by \(index.record(at: path)?.origin ?? "?")")
                queueInstall(.remove(path: path, version: version, expected: expected))
            case let .conflictCopy(path, expected):
                queueInstall(.conflict(path: path, expected: expected))
            case .observe(let path):
                observe(path)
            case .retryLater(let path):
                retryLater(path)
            }
        }
    }

    /// An install failing for this long (a directory this node cannot
    /// write, say) is retried every `slowRetryInterval` instead of every
    /// second: such a failure lasts until someone fixes it.
    static let slowRetryAfter: UInt64 = 10_000
    static let slowRetryInterval: UInt64 = 15_000

    private func retryLater(_ path: String) {
        guard !stopping else { return }
        if let trouble = sync.fetchTrouble[path], trouble.why.hasPrefix(Node.installTroublePrefix),
           loop.now - min(trouble.since, loop.now) >= Node.slowRetryAfter {
            sync.slowRetry.insert(path)
            guard sync.slowRetryTimer == nil else { return }
            sync.slowRetryTimer = loop.schedule(after: Node.slowRetryInterval) { [unowned self] in
                sync.slowRetryTimer = nil
                let paths = sync.slowRetry
                sync.slowRetry.removeAll()
                retry(paths)
            }
            return
        }
        sync.retry.insert(path)
        guard sync.retryTimer == nil else { return }
        sync.retryTimer = loop.schedule(after: 1_000) { [unowned self] in
            sync.retryTimer = nil
            let paths = sync.retry
            sync.retry.removeAll()
            retry(paths)
        }
    }

    private func retry(_ paths: PathSet) {
        var actions: [SyncAction] = []
        for path in paths { actions += reconciler.reconcile(path, index: index) }
        perform(actions)
        flushSoon()
    }

    func queueInstall(_ item: InstallItem) {
        sync.installs.append(item)
        guard !sync.installScheduled else { return }
        sync.installScheduled = true
        // While more fetches are landing, wait a moment so one disk flush
        // covers many files (a lone edit still goes at once).
        let gather: UInt64 = fetcher.inFlight > 1 ? 5 : 0
        loop.schedule(after: gather) { [unowned self] in
            sync.installScheduled = false
            startInstalls()
        }
    }

    /// An install that failed and is retried (`retryLater`): logged once
    /// per version (a path that cannot be written, say one owned by another
    /// user, would log a line per retry forever), then listed by `status`
    /// and warned of with the files that cannot be fetched.
    static let installTroublePrefix = "cannot install it here"

    private func noteInstallTrouble(_ path: String, _ version: UInt64, _ why: String) {
        let known = sync.fetchTrouble[path].flatMap { $0.version == version ? $0 : nil }
        if known == nil || !(known?.why.hasPrefix(Node.installTroublePrefix) ?? false) {
            logger.info("cannot install \(path) yet: \(why)")
        } else {
            logger.debug("cannot install \(path) yet: \(why)")
        }
        sync.fetchTrouble[path] = (version, "\(Node.installTroublePrefix): \(why)", known?.since ?? loop.now)
    }

    /// Whether `local` can be a read-only directory seen while an install
    /// made it writable for a moment (`LocalDisk.inWritableDirectory`): one
    /// of the modes it is known by (the manifest's, the index's) plus the owner's
    /// write and search bits.
    private func mayBePassingMode(_ path: String, _ local: LocalFile) -> Bool {
        guard local.kind == .directory else { return false }
        func passing(from mode: UInt32) -> Bool { local.mode != mode && local.mode == mode | 0o300 }
        if let known = reconciler.manifest[path]?.local ?? nil, known.kind == .directory, passing(from: known.mode) {
            return true
        }
        if let record = index.record(at: path), record.kind == .directory, passing(from: record.modeToInstall) { return true }
        return false
    }

    /// Installs everything queued in one thread-pool job: one disk flush for
    /// all fetched files, then each renamed into place if the local state is
    /// still what the reconciler expected.
    private func startInstalls() {
        // Never beside a manifest save: the save empties the install journal,
        // so it must cover every install the journal holds.
        guard !sync.installing, !sync.manifestSaving, !sync.installs.isEmpty, !stopping else { return }
        sync.installing = true
        sync.installBatches += 1
        let items = sync.installs
        sync.installs.removeAll()
        var downloads: [String: Fetcher.Fetched] = [:]
        for case .file(let fetched) in items { downloads[fetched.record.path] = fetched }
        let keeping = LocalDisk.Keep(directory: temporaryDirectory, capacity: max(0, Node.maxKeptFiles - sync.keptCount))
        noteRemovalsRunning(items, capacity: keeping.capacity)
        let root = config.root
        let node = config.name
        let now = Int64(loop.wallClockSeconds)
        let journal = installJournalPath
        loop.queueWork({ LocalDisk.install(items, root: root, node: node, now: now, journal: journal, keep: keeping) },
                       completion: { [unowned self] results in
            sync.installing = false
            for path in sync.lookAfterInstall { observe(path) }
            sync.lookAfterInstall.removeAll()
            var actions: [SyncAction] = []
            for result in results {
                switch result {
                case let .installed(path, version, local):
                    actions += reconciler.installed(path, version: version, local: local, index: index)
                case let .kept(path, version, at, content, stamp):
                    actions += reconciler.installed(path, version: version, local: nil, index: index)
                    keep(at, content, stamp)
                case let .failed(path, version, failure):
                    if case .transient = failure, let unsynced = keepsOnlyUnsynced(path, version),
                       keepDirectory(path, holding: unsynced) {
                        actions += reconciler.installed(path, version: version, local: nil, index: index)
                        continue
                    }
                    if case .transient(let why) = failure { noteInstallTrouble(path, version, why) }
                    if let download = downloads[path], download.record.version == version {
                        // Installed by the retry, or by the fetch after the look
                        // a local change asks for, without fetching it again;
                        // swept once no longer wanted.
                        sync.verifiedDownloads[path] = download
                        fetcher.mayHoldStalePartials = true
                    }
                    actions += reconciler.installFailed(path, version: version, failure, index: index)
                case let .conflictCopied(path, copy, local):
                    logger.warning("conflict: \(path) changed here and elsewhere at once; this node's version is kept as \(copy)")
                    recentConflicts.append(copy)
                    if recentConflicts.count > 20 { recentConflicts.removeFirst() }
                    actions += reconciler.conflictCopied(path, to: copy, local: local, index: index)
                case let .conflictFailed(path, why):
                    recordError("cannot keep a conflict copy of \(path): \(why)")
                    actions += reconciler.conflictCopyFailed(path, index: index)
                case let .conflictChangedAgain(path):
                    // A writer still at work: routine, not an error to show in status.
                    logger.info("conflict copy of \(path) put off: it changed again; looking at it again")
                    actions += reconciler.conflictCopyFailed(path, index: index)
                }
            }
            // Fetches that waited for this batch's deletions: moved from the kept files now.
            actions += sync.fetchesAwaitingRemovals
            sync.fetchesAwaitingRemovals.removeAll()
            sync.removalsRunning.removeAll()
            perform(actions)
            flushSoon()
            if sync.manifestSaveWanted { saveManifest(synchronously: false) }
            startInstalls()
        })
    }

    /// A manifest save waits this many times as long as the last one's
    /// encoding took, so saves take at most about 2% of the loop.
    static let manifestSaveSpacing: UInt64 = 50

    /// A save may start: a second since the last, or 50 times the loop time
    /// (ms) its encoding took if that is longer.
    static func manifestSaveDue(now: UInt64, lastEncoded: (at: UInt64, ms: UInt64)) -> Bool {
        now - min(lastEncoded.at, now) >= max(1_000, manifestSaveSpacing * lastEncoded.ms)
    }

    /// Writes the manifest (temporary file, fsync, rename) when it changed,
    /// then empties the install journal it now covers. Waits for a running
    /// install batch (whose journal entries it would not cover) to finish.
    func saveManifest(synchronously: Bool) {
        guard reconciler.manifestDirty, !sync.manifestSaving else { return }
        if sync.installing {
            sync.manifestSaveWanted = true
            guard synchronously else { return }
        }
        // The whole manifest is encoded on the loop (100 ms at 300,000 paths,
        // most of a second when three daemons share 2 cores): while files
        // keep arriving, a large one is saved less often. The install journal
        // keeps what it does not cover yet.
        if !synchronously, !Node.manifestSaveDue(now: loop.now, lastEncoded: sync.manifestEncoded) { return }
        let coversJournal = !sync.installing
        sync.manifestSaveWanted = false
        let started = monotonicNanoseconds()
        let bytes = Manifest.encode(reconciler.manifest)
        sync.manifestEncoded = (loop.now, (monotonicNanoseconds() - started) / 1_000_000)
        reconciler.markManifestSaved()
        let path = stateDirectory + "/manifest"
        let journal = installJournalPath
        let write = { () -> Error? in
            do {
                let fd = try FileDescriptor.open(path + ".tmp", .writeOnly, options: [.create, .truncate], permissions: 0o600)
                try fd.closeAfter {
                    try fd.write(all: bytes)
                    try fd.syncData()
                }
                try FileDescriptor.rename(path + ".tmp", to: path)
                if coversJournal {
                    // No directory fsync first: journaling file systems (ext4,
                    // xfs) commit metadata in order, so after a power cut the
                    // truncation is never there without the rename before it.
                    try InstallJournal.clear(journal)
                }
                return nil
            } catch {
                return error
            }
        }
        if synchronously {
            if let error = write() { recordError("cannot save \(path): \(error)") }
            return
        }
        sync.manifestSaving = true
        loop.queueWork(write, completion: { [unowned self] error in
            sync.manifestSaving = false
            if let error { recordError("cannot save \(path): \(error)") }
            startInstalls()
        })
    }
}
