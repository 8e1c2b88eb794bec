/// A file the index deleted here, kept under `.nsync/tmp` (full path) since
/// `at` (loop ms), with its status there.
struct KeptFile {
    let path: String
    let at: UInt64
    let stamp: FileStatus
}

/// A fetch done with bytes this node already has, as one rename.
struct LocalMove {
    enum Source {
        /// A file the index deletes in the same batch: the move is its deletion.
        case deleted(path: String, version: UInt64, expected: LocalFile)
        /// A file it deleted a moment ago, kept at this full path, with the
        /// status it had when it was kept.
        case kept(String, FileStatus)
    }

    var source: Source
    /// The record to install, and what must be at its path.
    var record: FileRecord
    var expected: LocalFile?
}

/// Renames and moves cost no transfer. On the node where a file is renamed,
/// the new name's hash is taken from the old name's when the stat (inode
/// included) is unchanged, so nothing is read again. On the others, the
/// deletion of the old name and the fetch of the new one carry the same
/// bytes: the file is renamed into place. The two may commit in one batch
/// (paired in `perform`) or apart (the deleted file was kept a while).
extension Node {
    /// Deleted files of any size but empty are kept (a renamed source tree
    /// is thousands of small files), at most this many at a time (about
    /// 25 MB of bookkeeping): an rm -rf of more unlinks the rest at once,
    /// and a folder of more renamed has the rest fetched again (at 10,000,
    /// a folder of 20,000 files renamed cost each other node 8,700 fetches).
    static let maxKeptFiles = 100_000
    /// How long a rename seen here vouches for the old name's hash (ms).
    static let renameHintLifetime: UInt64 = 60_000

    // MARK: where the rename happened

    /// Remembers what `from` and everything the manifest knows below it held,
    /// as hints for the same names under `to`.
    func noteRename(from: String, to: String, isDirectory: Bool) {
        let now = loop.now
        // Stale hints go now and then, not on every rename (a burst of them
        // after a large directory's would cost each rename their count).
        if !sync.renameHints.isEmpty, now - min(sync.renameHintsPurgedAt, now) > 5_000 {
            sync.renameHintsPurgedAt = now
            let stale = sync.renameHints.compactMap { now - min($0.value.at, now) > Node.renameHintLifetime ? $0.key : nil }
            for path in stale { sync.renameHints[path] = nil }
        }
        if !isDirectory {
            if let old = reconciler.manifest[from]?.local, old.kind == .file { sync.renameHints[to] = (old, now) }
            return
        }
        // A directory: what it held goes along (a walk of the manifest, only here).
        let prefix = from + "/"
        for (path, entry) in reconciler.manifest where path.hasPrefix(prefix) {
            guard let local = entry.local, local.kind == .file else { continue }
            sync.renameHints[to + path.dropFirst(from.count)] = (local, now)
        }
        for (path, announced) in reconciler.announcing(under: prefix) {
            guard let local = announced, local.kind == .file else { continue }
            sync.renameHints[to + path.dropFirst(from.count)] = (local, now)
        }
    }

    func takeRenameHint(_ path: String) -> LocalFile? {
        guard !sync.renameHints.isEmpty, let hint = sync.renameHints.removeValue(forKey: path) else { return nil }
        return loop.now - min(hint.at, loop.now) <= Node.renameHintLifetime ? hint.local : nil
    }

    // MARK: on the other nodes

    /// Turns fetches of bytes this node has into local moves: the bytes of a
    /// file deleted in `actions` or in the installs not started yet (that
    /// deletion leaves them), else of one deleted and kept a moment ago.
    func pairMoves(_ actions: inout [SyncAction]) -> [LocalMove] {
        var wanted: [FileContent: [Int]] = [:]
        for (i, action) in actions.enumerated() {
            if case .fetch(let record, _) = action, record.kind == .file, record.size > 0 {
                wanted[FileContent(size: record.size, hash: record.hash), default: []].append(i)
            }
        }
        guard !wanted.isEmpty else { return [] }
        var moves: [LocalMove] = []
        var pairedActions = Set<Int>()
        var pairedInstalls = Set<Int>()
        func pair(_ path: String, _ version: UInt64, _ expected: LocalFile) -> Bool {
            guard expected.kind == .file, expected.size > 0,
                  let i = wanted[FileContent(size: expected.size, hash: expected.hash)]?.popLast(),
                  case let .fetch(record, target) = actions[i] else { return false }
            pairedActions.insert(i)
            moves.append(LocalMove(source: .deleted(path: path, version: version, expected: expected), record: record,
                                   expected: target))
            return true
        }
        for (i, item) in sync.installs.enumerated() {
            if case let .remove(path, version, expected) = item, pair(path, version, expected) { pairedInstalls.insert(i) }
        }
        for (i, action) in actions.enumerated() {
            if case let .remove(path, version, expected) = action, pair(path, version, expected) { pairedActions.insert(i) }
        }
        if !sync.kept.isEmpty {
            for (content, indices) in wanted {
                for i in indices {
                    guard let kept = sync.kept[content]?.popLast(), case let .fetch(record, target) = actions[i] else { break }
                    if sync.kept[content]?.isEmpty == true { sync.kept[content] = nil }
                    pairedActions.insert(i)
                    moves.append(LocalMove(source: .kept(kept.path, kept.stamp), record: record, expected: target))
                }
            }
        }
        if !sync.removalsRunning.isEmpty {
            // The batch running now deletes (and keeps) these bytes: wait for it.
            for (content, indices) in wanted {
                for i in indices where !pairedActions.contains(i) {
                    guard let running = sync.removalsRunning[content], running > 0 else { break }
                    sync.removalsRunning[content] = running - 1
                    pairedActions.insert(i)
                    sync.fetchesAwaitingRemovals.append(actions[i])
                }
            }
        }
        guard !pairedActions.isEmpty else { return [] }
        actions = actions.enumerated().filter { !pairedActions.contains($0.offset) }.map(\.element)
        if !pairedInstalls.isEmpty {
            sync.installs = sync.installs.enumerated().filter { !pairedInstalls.contains($0.offset) }.map(\.element)
        }
        guard !moves.isEmpty else { return [] }
        for move in moves { fetcher.abandonSpeculation(move.record.path) }
        logger.info("\(moves.count) file\(moves.count == 1 ? "" : "s") renamed or moved elsewhere: moved here from the old name, nothing to fetch")
        for move in moves { logger.debug("moving \(move.source) to \(move.record.path) (version \(move.record.version)): same bytes") }
        return moves
    }

    /// Turns fetches of bytes a name here holds into local copies, verified
    /// as they are read: a copy made on another node, or a mode change (the
    /// record's bytes are the path's own). A copy that does not match is
    /// fetched after all.
    func copyLocally(_ actions: inout [SyncAction]) {
        guard !reconciler.largeFiles.isEmpty else { return }
        var copied = 0
        actions.removeAll { action in
            guard case let .fetch(record, expected) = action, record.kind == .file,
                  record.size >= FileContent.localCopyMinimumSize,
                  let source = reconciler.largeFiles[FileContent(size: record.size, hash: record.hash)]?.first
            else { return false }
            copy(record, expected: expected, from: source)
            copied += 1
            return true
        }
        if copied > 0 {
            logger.info("\(copied) file\(copied == 1 ? "" : "s") with bytes this node has: copied here, nothing to fetch")
        }
    }

    /// Local copies running at once: each reads and writes a whole file on
    /// the thread pool, which also writes the Raft log.
    static let maxLocalCopies = 2

    private func copy(_ record: FileRecord, expected: LocalFile?, from source: String) {
        fetcher.abandonSpeculation(record.path)
        sync.localCopies.append((record, expected, source))
        startLocalCopies()
    }

    private func startLocalCopies() {
        while sync.localCopiesRunning < Node.maxLocalCopies, !sync.localCopies.isEmpty, !stopping {
            let (record, expected, source) = sync.localCopies.removeFirst()
            sync.localCopiesRunning += 1
            let temporary = temporaryDirectory + "/copy-\(record.version)-\(UInt32.random(in: 0...UInt32.max))"
            let root = config.root
            logger.debug("copying \(source) to \(record.path) (version \(record.version)): same bytes")
            loop.queueWork({ () -> String? in
                LocalDisk.copyVerified(root: root, from: source, to: temporary, record: record)
            }, completion: { [unowned self] failure in
                sync.localCopiesRunning -= 1
                if let failure {
                    logger.info("fetching \(record.path) after all: \(failure)")
                    fetcher.fetch(record, expected: expected)
                } else {
                    queueInstall(.file(Fetcher.Fetched(record: record, expected: expected, temporaryPath: temporary)))
                }
                startLocalCopies()
            })
        }
    }

    /// Counts the bytes of the files `items` delete that will be kept, so a
    /// fetch of them committed meanwhile waits for the batch (`pairMoves`).
    func noteRemovalsRunning(_ items: [InstallItem], capacity: Int) {
        var left = capacity
        for item in items where left > 0 {
            guard case let .remove(_, _, expected) = item, expected.kind == .file, expected.size > 0 else { continue }
            sync.removalsRunning[FileContent(size: expected.size, hash: expected.hash), default: 0] += 1
            left -= 1
        }
    }

    /// A deleted file's bytes are at `path` now; dropped after the tuning's `keptFileLifetime`.
    func keep(_ path: String, _ content: LocalFile, _ stamp: FileStatus) {
        sync.kept[FileContent(size: content.size, hash: content.hash), default: []]
            .append(KeptFile(path: path, at: loop.now, stamp: stamp))
        scheduleKeptPurge()
    }

    /// Names (in `.nsync/tmp`) of the kept files: not stale partial downloads.
    var keptFileNames: Set<String> {
        Set(sync.kept.values.joined().map { $0.path.split(separator: "/").last.map(String.init) ?? $0.path })
    }

    private func scheduleKeptPurge() {
        guard sync.keptPurgeTimer == nil, !stopping else { return }
        let lifetime = config.tuning.keptFileLifetime
        sync.keptPurgeTimer = loop.schedule(after: min(5_000, lifetime)) { [unowned self] in
            sync.keptPurgeTimer = nil
            purgeKeptFiles(olderThan: lifetime)
            if !sync.kept.isEmpty { scheduleKeptPurge() }
        }
    }

    /// Removes kept files older than `age` ms (all with 0).
    func purgeKeptFiles(olderThan age: UInt64) {
        let now = loop.now
        var old: [String] = []
        for (content, files) in sync.kept {
            let young = files.filter { now - min($0.at, now) < age }
            guard young.count < files.count else { continue }
            old += files.filter { now - min($0.at, now) >= age }.map(\.path)
            sync.kept[content] = young.isEmpty ? nil : young
        }
        guard !old.isEmpty else { return }
        // One job for all: an rm -rf elsewhere keeps thousands.
        loop.queueWork({ for path in old { _ = try? FileDescriptor.removeIfPresent(path) } }, completion: { _ in })
    }
}
