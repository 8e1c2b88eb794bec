/// What this node found on its own disk at a path (never `.deleted`: absence
/// is `nil`). A plain value; any thread.
public struct LocalFile: Equatable, Sendable {
    public var kind: FileKind
    public var size: UInt64
    public var mode: UInt32
    public var mtime: Int64
    /// SHA-256 of a regular file's bytes; empty for directories and symlinks.
    public var hash: [UInt8]
    /// A symlink's target text; empty otherwise.
    public var target: String
    /// Inode number: a file replaced by rename has the same size/mtime but not the same inode.
    public var inode: UInt64
    /// Hashed within a clock tick or two of its mtime: a write in that same
    /// tick (the kernel stamps files from a coarse clock) leaves the stat as
    /// it was, so the stat alone does not vouch for `hash` ("racy git").
    /// Kept in memory only and not part of equality.
    public var isRacy = false

    public init(kind: FileKind, size: UInt64 = 0, mode: UInt32, mtime: Int64, hash: [UInt8] = [],
                target: String = "", inode: UInt64 = 0) {
        self.kind = kind
        self.size = size
        self.mode = mode & FileRecord.syncedModeBits
        self.mtime = mtime
        self.hash = hash
        self.target = target
        self.inode = inode
    }

    public static func == (a: LocalFile, b: LocalFile) -> Bool {
        a.kind == b.kind && a.size == b.size && a.mode == b.mode && a.mtime == b.mtime && a.hash == b.hash
            && a.target == b.target && a.inode == b.inode
    }

    /// Same content and permission bits as `record` (mtime and inode aside):
    /// nothing to announce and nothing to fetch.
    public func sameContent(as record: FileRecord) -> Bool {
        guard kind == record.kind, mode == record.modeToInstall else { return false }
        switch kind {
        case .file: return size == record.size && hash == record.hash
        case .symlink: return target == record.target
        case .directory: return true
        case .deleted: return false
        }
    }

    /// A file with `record`'s bytes and mode (or a symlink with its target)
    /// under another mtime: only the mtime is to be synced (a touch).
    public func differsOnlyInMtime(from record: FileRecord) -> Bool {
        (kind == .file || kind == .symlink) && mtime != record.mtime && sameContent(as: record)
    }

    /// Same content and permission bits as `other`.
    public func sameContent(as other: LocalFile) -> Bool {
        kind == other.kind && mode == other.mode && size == other.size && hash == other.hash && target == other.target
    }

    /// Same as `other` for every field a stat shows: if so, the bytes are
    /// taken as unchanged and not hashed again.
    public func sameStat(as other: LocalFile) -> Bool {
        kind == other.kind && size == other.size && mode == other.mode && mtime == other.mtime
            && inode == other.inode && target == other.target
    }
}

/// A file's bytes by size and SHA-256: what a deletion and a fetch have in
/// common when the file was renamed on another node, or two names when one
/// is a copy of the other. A plain value.
public struct FileContent: Hashable, Sendable {
    public let size: UInt64
    public let hash: [UInt8]

    /// Smaller files are fetched (it costs little) rather than copied from
    /// another name here.
    public static let localCopyMinimumSize: UInt64 = 256 << 10

    public init(size: UInt64, hash: [UInt8]) {
        self.size = size
        self.hash = hash
    }
}

private extension Dictionary where Key == FileContent, Value == Set<String> {
    mutating func remove(_ path: String, from content: FileContent) {
        guard var paths = self[content] else { return }
        paths.remove(path)
        self[content] = paths.isEmpty ? nil : paths
    }
}

/// This node's memory of a path: which index version its disk holds.
public struct ManifestEntry: Equatable, Sendable {
    /// The record version the local state corresponds to; 0 when the local
    /// state was never in the index (a new file not yet announced).
    public var version: UInt64
    /// What is on disk; nil when the path is absent.
    public var local: LocalFile?

    public init(version: UInt64, local: LocalFile?) {
        self.version = version
        self.local = local
    }
}

/// Work the reconciler asks the node to do; each names the local state it
/// expects to find, so a user's concurrent change is never overwritten.
public enum SyncAction: Equatable, Sendable {
    /// Fetch the record's bytes from a holder and install them.
    case fetch(FileRecord, expected: LocalFile?)
    /// Create (or fix the mode of) a directory.
    case makeDirectory(FileRecord, expected: LocalFile?)
    /// Create or replace a symlink.
    case makeSymlink(FileRecord, expected: LocalFile?)
    /// The local file already has the record's bytes: give it the record's
    /// mode and mtime too (a node that joined with a copy of the same file,
    /// a touch or a chmod elsewhere).
    case setModificationTime(FileRecord, expected: LocalFile)
    /// Remove the local file, link or (empty) directory: the index deleted it.
    case remove(path: String, version: UInt64, expected: LocalFile)
    /// Our change lost: move our bytes aside as a conflict copy.
    case conflictCopy(path: String, expected: LocalFile)
    /// Stat (and hash if needed) the path again and report `observed`.
    case observe(String)
    /// Try reconciling this path again later (e.g. a directory not yet empty).
    case retryLater(String)
}

/// Why an install (fetch, mkdir, symlink, remove) did not happen.
public enum InstallFailure: Equatable, Sendable {
    /// The local file is not what the reconciler expected: a user changed it.
    case localChanged
    /// Worth retrying later (no holder reachable, disk full, directory not empty).
    case transient(String)
}

/// The installs a reconciler has in progress, by path (the version being
/// installed), and how many of those that put something on disk (not
/// removals, which go deepest first) are below each directory: such an
/// install makes its parents if they are gone. A plain value.
public struct InstallsInFlight {
    private var versions = PathMap<UInt64>()
    private var adding = PathSet()
    private var below = PathMap<Int>()

    public init() {}

    /// Setting a version starts an install that puts something at `path`.
    public subscript(path: String) -> UInt64? {
        get { versions[path] }
        set { set(path, newValue, adds: true) }
    }

    /// Starts the removal of `path` at `version`.
    mutating func startRemoval(_ path: String, version: UInt64) { set(path, version, adds: false) }

    public var isEmpty: Bool { versions.isEmpty }
    public var count: Int { versions.count }

    /// Whether an install that puts something below the directory `path` is in progress.
    public func hasAdditions(under path: String) -> Bool { below[path] != nil }

    /// The paths below the directory `path` that an install in progress puts something at.
    public func additions(under path: String) -> [String] {
        guard hasAdditions(under: path) else { return [] }
        let prefix = path + "/"
        return adding.filter { $0.hasPrefix(prefix) }
    }

    private mutating func set(_ path: String, _ version: UInt64?, adds: Bool) {
        versions[path] = version
        let now = version != nil && adds
        let was = now ? !adding.insert(path).inserted : adding.remove(path) != nil
        guard was != now else { return }
        var ancestor = Substring(path)
        while let slash = ancestor.lastIndex(of: "/") {
            ancestor = ancestor[..<slash]
            let count = below[String(ancestor), default: 0] + (now ? 1 : -1)
            below[String(ancestor)] = count > 0 ? count : nil
        }
    }
}

/// Drives this node's directory toward the index and announces local changes
/// (DESIGN.md, "The reconciler"). Pure: events in, actions and index changes
/// out; the node executes them on the loop and thread pool. Loop thread only.
public struct Reconciler {
    public let node: NodeName
    public private(set) var manifest: PathMap<ManifestEntry>
    /// Our puts in flight, by path, with the local state they announced.
    private var pendingPuts = PathMap<LocalFile?>()
    /// Paths observed again while a put was in flight: look once more after its outcome.
    private var recheck = PathSet()
    /// Paths rejected because a file or symlink above them held the name,
    /// by that name: looked at again once something is decided there.
    private var blocked = PathMap<[String]>()
    /// Directories replaced by a file, held back once for their entries' deletions.
    private var deferred = PathSet()
    /// Paths whose conflict copy was asked for and not yet reported made or failed.
    private var copying = PathSet()
    /// Paths a tracked file was renamed to here, until they are looked at
    /// with no install or put in the way (`observed(_:_:index:renamed:)`).
    private var renamedHere = PathSet()
    /// Installs in progress: path -> version being installed.
    public private(set) var installing = InstallsInFlight()
    /// Changes to propose in the next batch.
    private var outbox: [IndexChange] = []
    /// Holds already in the outbox, so one batch says each once.
    private var queuedHolds = PathMap<UInt64>()
    /// Whether the manifest changed since it was last saved.
    public private(set) var manifestDirty = false

    /// Paths whose files here hold these bytes (files of
    /// `FileContent.localCopyMinimumSize` and more): a new name with the same
    /// bytes is copied from one of them, not fetched.
    public private(set) var largeFiles: [FileContent: Set<String>] = [:]

    public init(node: NodeName, manifest: PathMap<ManifestEntry> = [:]) {
        self.node = node
        self.manifest = manifest
        for (path, entry) in manifest {
            if let content = Self.largeContent(entry) { largeFiles[content, default: []].insert(path) }
        }
    }

    /// Index changes waiting to be proposed (as one batch).
    public mutating func takeOutbox() -> [IndexChange] {
        defer {
            outbox.removeAll(keepingCapacity: true)
            queuedHolds.removeAll()
        }
        // New directories first, parents before children: the index rejects
        // an entry under a name that is not a directory yet. The rest keep
        // their order (a directory's entries are deleted before a file
        // replaces it, or the index would keep the directory).
        func isDirectory(_ change: IndexChange) -> Bool {
            if case .put(let put) = change { return put.kind == .directory }
            return false
        }
        let directories = outbox.filter(isDirectory)
        guard !directories.isEmpty else { return outbox }
        let depth = { (change: IndexChange) in change.path.utf8.reduce(0) { $1 == UInt8(ascii: "/") ? $0 + 1 : $0 } }
        // Swift's sort is not stable: the original position breaks ties.
        let parentsFirst = directories.enumerated().sorted {
            (depth($0.element), $0.offset) < (depth($1.element), $1.offset)
        }.map(\.element)
        return parentsFirst + outbox.filter { !isDirectory($0) }
    }

    public var hasOutbox: Bool { !outbox.isEmpty }
    public var pendingPutCount: Int { pendingPuts.count }
    /// Whether a put of ours for `path` awaits its outcome.
    public func isAnnouncing(_ path: String) -> Bool { pendingPuts[path] != nil }
    /// The paths under `prefix` (a directory's path and "/") with a put on
    /// its way, and what each announces (nil: a deletion): known to the
    /// cluster soon, to the manifest only once committed.
    public func announcing(under prefix: String) -> [(path: String, local: LocalFile?)] {
        pendingPuts.compactMap { $0.key.hasPrefix(prefix) ? ($0.key, $0.value) : nil }
    }
    /// Every path below the directory `path` that this node holds, is
    /// announcing or is installing: what a look must cover when the
    /// directory is removed or moved away here. The announced ones (a tree
    /// moved in and away again at once, `mv a tmp && mv tmp c`) are in no
    /// manifest yet; nor is a fetch whose file may already be in place,
    /// its manifest entry set only when the install reports back.
    public func pathsKnown(under path: String) -> [String] {
        let prefix = path + "/"
        var paths = manifest.compactMap { $0.key.hasPrefix(prefix) ? $0.key : nil }
        paths += pendingPuts.compactMap { $0.key.hasPrefix(prefix) ? $0.key : nil }
        paths += installing.additions(under: path)
        return paths
    }
    public var hasPendingWork: Bool { !pendingPuts.isEmpty || !installing.isEmpty || !outbox.isEmpty || !copying.isEmpty }

    public mutating func markManifestSaved() { manifestDirty = false }

    /// This node installed `entry` at `path` (its install journal and the
    /// index agree), which the manifest did not know yet.
    mutating func knownInstalled(_ path: String, _ entry: ManifestEntry) { setManifest(path, entry) }

    // MARK: local changes

    /// The node looked at `path` on disk and found `local` (nil: absent).
    /// `renamed`: a file this node tracked was renamed to `path` here (the
    /// watcher saw the rename, or the start-up scan found its inode under
    /// this name): the user's, never a stale copy, whatever its bytes.
    public mutating func observed(_ path: String, _ local: LocalFile?, index: FileIndex,
                                  renamed: Bool = false) -> [SyncAction] {
        if renamed { renamedHere.insert(path) }
        if replayed != nil {
            // Judged against the index as it will be, not as it was.
            lookAgain.insert(path)
            return []
        }
        if pendingPuts[path] != nil || installing[path] != nil || copying.contains(path) {
            recheck.insert(path)
            return []
        }
        let movedHere = renamedHere.remove(path) != nil
        var entry = manifest[path]
        let record = index.record(at: path)
        if record == nil, let stale = entry, stale.version > 0, stale.local != nil, local != nil {
            // The manifest says we hold a live version the index no longer
            // has any record of. The index only forgets a deletion every node
            // held, this one included: the entry predates a crash (manifests
            // are saved about once a second) and what is on disk is unknown
            // to the cluster. Announce it rather than keep it here alone.
            setManifest(path, nil)
            entry = nil
        }
        if let local, let known = entry?.local, local.sameStat(as: known), local.sameContent(as: known) {
            // Unchanged since we last looked; the record may still need us.
            // Read again past its write's tick, the stat vouches for it now.
            if known.isRacy, !local.isRacy { manifest[path]?.local = local }
            return reconcile(path, index: index)
        }
        if let local, let entry, entry.version > 0, let known = entry.local, local.kind == .directory,
           known.kind == .directory, local.inode == known.inode, local.sameContent(as: known) {
            // The directory we hold, its mtime moved by entries made, removed
            // or renamed in it (an install's as much as a user's): its mode is
            // all a directory record carries, so nothing to announce. Were it
            // announced, a folder whose deletion waits for its last entries to
            // move out (`mv a tmp && mv tmp c` elsewhere) would be an edit
            // beating that deletion: `tmp` back on every node.
            setManifest(path, ManifestEntry(version: entry.version, local: local))
            return reconcile(path, index: index)
        }
        if let record, record.kind != .deleted, let local, local.sameContent(as: record) {
            if local.differsOnlyInMtime(from: record) {
                if let entry, entry.version == record.version, entry.local?.mtime != local.mtime {
                    // Same bytes, new mtime on a version we hold: the user
                    // touched it (or restored an old mtime). Trees must match in
                    // mtime too: announce it; the index accepts a touch on the
                    // current version, and the others only set the mtime.
                    announce(path, local, base: record.version, index: index)
                    return []
                }
                if entry == nil || entry?.version != record.version {
                    // Same bytes found on a path this node never tracked (it
                    // joined with a copy), or a touch from another node not yet
                    // applied here: the record's mtime wins.
                    installing[path] = record.version
                    return [.setModificationTime(record, expected: local)]
                }
            }
            setManifest(path, ManifestEntry(version: record.version, local: local))
            hold(record)
            return []
        }
        if entry?.local == nil, !movedHere, let record, record.kind == .directory, let local, local.kind == .directory,
           entry?.version != record.version {
            // A directory this node did not know of, where the index has one
            // under another mode: made as a parent of something installed
            // before its own record (mode 0755), or by a user on a name the
            // cluster has. A mode is not content to keep: the record's wins.
            installing[path] = record.version
            return [.makeDirectory(record, expected: local)]
        }
        if entry == nil, !movedHere, let record, record.kind == .deleted, let local, local.kind == .file,
           !record.hash.isEmpty, local.hash == record.hash {
            // We lost track of this path (no manifest entry) and hold exactly
            // the bytes the cluster deleted: a stale copy, not an edit. (Not
            // a file the user moved here: it has those bytes because the
            // deleted file and the moved one are the same content, and its
            // old name's deletion is going out too.)
            installing.startRemoval(path, version: record.version)
            return [.remove(path: path, version: record.version, expected: local)]
        }
        if local == nil && entry?.local == nil {
            // Absent before and now: the user deleted nothing; the record may still need us.
            if let record, record.kind == .deleted {
                if entry?.version != record.version {
                    setManifest(path, ManifestEntry(version: record.version, local: nil))
                }
                hold(record)
                return []
            }
            return reconcile(path, index: index)
        }
        if let local, local.kind != .directory, entry?.local?.kind == .directory, deferred.insert(path).inserted {
            // A directory replaced by a file or symlink: its entries' deletions
            // must reach the index first, or the index keeps the directory
            // (and ours would lose as a conflict). Look at them, and at this
            // path again once each is decided (once: an entry that stays live,
            // an edit elsewhere, makes ours a copy as it should).
            let prefix = Array((path + "/").utf8)
            let inside = manifest.compactMap { key, entry in
                entry.local != nil && key.utf8.starts(with: prefix) ? key : nil
            }
            if !inside.isEmpty {
                for child in inside { blocked[child, default: []].append(path) }
                return inside.map { .observe($0) }
            }
        }
        deferred.remove(path)
        announce(path, local, base: entry?.version ?? 0, index: index)
        return []
    }

    private mutating func announce(_ path: String, _ local: LocalFile?, base: UInt64, index: FileIndex) {
        if local != nil {
            // A live path under a deleted directory revives the directory (an
            // edit beats a delete), or receivers would keep deleting it.
            var ancestor = Substring(path)
            while let slash = ancestor.lastIndex(of: "/") {
                ancestor = ancestor[..<slash]
                let dir = String(ancestor)
                guard let r = index.record(at: dir), r.kind == .deleted, pendingPuts[dir] == nil,
                      let d = manifest[dir]?.local ?? nil, d.kind == .directory else { continue }
                propose(dir, d, base: manifest[dir]?.version ?? 0)
            }
        }
        propose(path, local, base: base)
    }

    private mutating func propose(_ path: String, _ local: LocalFile?, base: UInt64) {
        pendingPuts[path] = .some(local)
        let change: PutChange
        if let local {
            change = PutChange(path: path, kind: local.kind, size: local.size, mode: local.mode, mtime: local.mtime,
                               hash: local.hash, target: local.target, baseVersion: base)
        } else {
            change = PutChange(path: path, kind: .deleted, size: 0, mode: 0, mtime: 0, hash: [], target: "",
                               baseVersion: base)
        }
        outbox.append(.put(change))
    }

    private mutating func hold(_ record: FileRecord) {
        guard !record.holders.contains(node), queuedHolds[record.path] != record.version else { return }
        queuedHolds[record.path] = record.version
        outbox.append(.hold(path: record.path, version: record.version))
    }

    private mutating func setManifest(_ path: String, _ entry: ManifestEntry?) {
        let old = manifest[path]
        if old != entry {
            if let content = Self.largeContent(old) { largeFiles.remove(path, from: content) }
            if let content = Self.largeContent(entry) { largeFiles[content, default: []].insert(path) }
            manifest[path] = entry
            manifestDirty = true
        }
    }

    /// The bytes of a file this node holds, if it is large enough to be
    /// worth copying locally rather than fetching.
    private static func largeContent(_ entry: ManifestEntry?) -> FileContent? {
        guard let local = entry?.local ?? nil, local.kind == .file, local.size >= FileContent.localCopyMinimumSize,
              local.hash.count == PutChange.hashSize else { return nil }
        return FileContent(size: local.size, hash: local.hash)
    }

    /// A proposal carrying these changes failed (no leader, timeout): propose them again.
    public mutating func proposalFailed(_ changes: [IndexChange]) {
        for change in changes {
            switch change {
            // Only if still pending: a later put of the same path may have replaced it.
            case .put(let p) where pendingPuts[p.path].map({ Self.put(p, announces: $0) }) == true:
                outbox.append(change)
            case .hold: outbox.append(change)
            default: break
            }
        }
    }

    // MARK: the index changed

    /// A committed command was applied to `index` with these outcomes.
    public mutating func applied(_ command: IndexCommand, outcomes: [ChangeOutcome], index: FileIndex) -> [SyncAction] {
        var actions: [SyncAction] = []
        for (change, outcome) in zip(command.changes, outcomes) {
            let path = change.path
            if !blocked.isEmpty, let waiting = blocked.removeValue(forKey: path) {
                actions += waiting.map { .observe($0) }
            }
            if command.origin == node, case .put(let put) = change, let announced = pendingPuts[path],
               Self.put(put, announces: announced) {
                pendingPuts[path] = nil
                switch outcome {
                case .accepted(let version), .alreadyCurrent(let version):
                    setManifest(path, ManifestEntry(version: version, local: announced))
                    if case .alreadyCurrent = outcome, let mine = announced, let record = index.record(at: path),
                       record.version == version, mine.differsOnlyInMtime(from: record) {
                        // The same bytes were already in the index under another
                        // mtime (two nodes with one file, e.g. a joiner): take the
                        // record's mtime so every tree ends identical. Until that
                        // is done the manifest says we hold the record's mtime: a
                        // crash before the action then finds a touch to announce
                        // (the trees still end identical) rather than nothing.
                        var held = mine
                        held.mtime = record.mtime
                        setManifest(path, ManifestEntry(version: version, local: held))
                        installing[path] = version
                        actions.append(.setModificationTime(record, expected: mine))
                        continue
                    }
                case .rejected(let current) where current.path != path:
                    // A file or symlink above this path holds the name, which is
                    // a directory here (the index is a tree). Our directory, with
                    // this and everything else in it, becomes a conflict copy and
                    // the winner is fetched — unless our own put of that directory
                    // is still on its way. Either way this path is looked at again
                    // once the name is decided, and, unknown to the manifest,
                    // announced if it is still here.
                    setManifest(path, nil)
                    blocked[current.path, default: []].append(path)
                    if pendingPuts[current.path] != nil { continue }
                    if let directory = manifest[current.path]?.local ?? nil, directory.kind == .directory {
                        actions += askConflictCopy(current.path, directory)
                    } else {
                        actions.append(.observe(current.path))
                    }
                case .rejected(let current):
                    if current.holders.contains(node), current.version != put.baseVersion {
                        // The winner is a state we announced holding (a put of ours
                        // that committed unmatched, before a restart or twice): what
                        // we have now came after it on our disk, so it is an edit of it.
                        // (Rejected on its own base version is the shape rule instead:
                        // entries another node put under this name win, and ours
                        // becomes a copy below.)
                        propose(path, announced, base: current.version)
                        continue
                    }
                    if put.kind == .file, current.kind == .file, current.hash == put.hash, let mine = announced {
                        // Same bytes, other mode: no conflict copy; take the winner's mode.
                        // The manifest keeps our bytes (version 0): if the fetch
                        // cannot happen and the path is then deleted, an entry
                        // saying "nothing here" would hold the deletion and leave
                        // them on disk, unknown to the index, forever.
                        setManifest(path, ManifestEntry(version: 0, local: mine))
                        installing[path] = current.version
                        actions.append(.fetch(current, expected: mine))
                        continue
                    }
                    if put.kind != .deleted, let mine = announced {
                        // Our bytes lost to a concurrent change: keep them as a copy.
                        setManifest(path, ManifestEntry(version: 0, local: mine))
                        actions += askConflictCopy(path, mine)
                        continue
                    }
                    // Our delete lost to an edit: the edit comes back.
                    setManifest(path, ManifestEntry(version: 0, local: nil))
                case .stale, .invalid:
                    break
                }
                if recheck.remove(path) != nil {
                    actions.append(.observe(path))
                    continue
                }
            } else if command.origin == node, case .put(let put) = change, pendingPuts[path] == nil,
                      let version = Self.committedVersion(outcome), manifest[path]?.version ?? 0 < version {
                // A put of ours no longer tracked (sent before a restart, or resent
                // after a timeout though it had committed): our disk had that state
                // at this version, so whatever is there now came after it. Look,
                // and announce it on top if it differs. (Not when the manifest is
                // newer: a replay at start-up goes through our old puts again.)
                var state = put.kind == .deleted ? nil : LocalFile(kind: put.kind, size: put.size, mode: put.mode,
                                                                   mtime: put.mtime, hash: put.hash, target: put.target)
                if var mine = state, let record = index.record(at: path), record.version == version,
                   mine.differsOnlyInMtime(from: record) {
                    // Found current: the same bytes were in under another mtime.
                    // Say we hold the record's, so the look below finds ours a touch.
                    mine.mtime = record.mtime
                    state = mine
                }
                setManifest(path, ManifestEntry(version: version, local: state))
                actions.append(.observe(path))
                continue
            }
            if case .forget = change, case .accepted = outcome, (manifest[path]?.local ?? nil) == nil {
                setManifest(path, nil)
                continue
            }
            actions += reconcile(path, index: index)
        }
        return actions
    }

    /// The version a put made current (or found current), if it got in.
    private static func committedVersion(_ outcome: ChangeOutcome) -> UInt64? {
        switch outcome {
        case .accepted(let version), .alreadyCurrent(let version): version == 0 ? nil : version
        case .rejected, .stale, .invalid: nil
        }
    }

    /// Version 0 with bytes on disk is a rejected change: its conflict copy is
    /// owed. Asked for once at a time, and again whenever the path is
    /// reconciled with none under way (after a failed copy, or a restart that
    /// lost the action: a look finding the same stat would otherwise leave it
    /// so forever).
    private mutating func askConflictCopy(_ path: String, _ local: LocalFile) -> [SyncAction] {
        guard copying.insert(path).inserted else { return [] }
        return [.conflictCopy(path: path, expected: local)]
    }

    /// Whether `put` is the proposal that announced `local`. An earlier put of
    /// the same path from this node (a re-proposal after a timeout when the
    /// first one committed too, or one sent before a restart) commits as well,
    /// and its outcome must not be taken for the pending one's.
    private static func put(_ put: PutChange, announces local: LocalFile?) -> Bool {
        guard let local else { return put.kind == .deleted }
        return put.kind == local.kind && put.size == local.size && put.mode == local.mode
            && put.mtime == local.mtime && put.hash == local.hash && put.target == local.target
    }

    /// Brings `path` in line with its record, if it is not already.
    public mutating func reconcile(_ path: String, index: FileIndex) -> [SyncAction] {
        if replayed != nil {
            replayed?.insert(path)
            return []
        }
        guard pendingPuts[path] == nil, let record = index.record(at: path) else { return [] }
        // One install per path at a time: two in flight can report in either
        // order, and an older one's report would leave the manifest claiming
        // what the disk no longer has. installed()/installFailed() look again.
        if installing[path] != nil { return [] }
        // A conflict copy under way moves the bytes away: holding (or
        // removing) them now would be wrong; conflictCopied() looks again.
        if copying.contains(path) { return [] }
        let entry = manifest[path]
        let local = entry?.local ?? nil
        if entry?.version == record.version {
            if record.origin == node, record.kind == .symlink, let local, local.kind == .symlink,
               local.target == record.target, local.mtime != record.mtime {
                // Our link, its time set after we announced it by a version
                // that did not sync link times (cp -a's lutimes): the manifest
                // learned the time, the cluster did not. Announced as a touch,
                // by the origin only (a receiver whose file system rounds or
                // refuses link times holds what it has).
                propose(path, local, base: record.version)
                return []
            }
            hold(record)
            return []
        }
        if let entry, entry.version > record.version {
            // The manifest is newer than the index: a restart replays the log
            // since the last snapshot, and the manifest was saved later. The
            // disk already holds what a later entry of that log says, so
            // acting on this older record would undo it (remove a file that
            // was created again after this deletion). Versions only grow: the
            // index reaches the manifest's version, or passes it, by itself.
            return []
        }
        if record.kind == .deleted {
            guard let local else {
                // Knowing nothing of this path is not knowing it is absent
                // (a manifest lost in a crash): look before holding the deletion.
                if entry == nil { return [.observe(path)] }
                setManifest(path, ManifestEntry(version: record.version, local: nil))
                hold(record)
                return []
            }
            // A rejected change whose conflict copy is not made yet: removing
            // it now would lose the user's bytes.
            if entry?.version == 0 { return askConflictCopy(path, local) }
            if local.kind == .directory, index.hasLiveEntry(under: path, notHeldBy: record.origin) {
                // Deleted while an edit inside it, which the deleting node
                // had not seen, won (edits beat deletes): the directory
                // stays, and is announced again, or every node holding it
                // would try to remove it forever. (Entries below that the
                // deleter holds are deletions of its still on their way: a
                // large rm -rf spans several entries. Then the removal
                // waits for them, retried while the directory is not empty.)
                propose(path, local, base: record.version)
                return []
            }
            if local.kind == .directory, installing.hasAdditions(under: path) {
                // A fetch under it is still on its way (started before the
                // deletion, its bytes not in the directory yet): removed now,
                // the directory would be made again as the fetch's parent,
                // and a look would find it unknown here on a deleted name and
                // announce it: back, empty, on every node. Once it landed
                // (and its own deletion removed it) the removal goes.
                return [.retryLater(path)]
            }
            installing.startRemoval(path, version: record.version)
            return [.remove(path: path, version: record.version, expected: local)]
        }
        if let local, local.sameContent(as: record) {
            if local.differsOnlyInMtime(from: record) {
                // The same bytes under another mtime (a touch elsewhere, or a
                // copy this node joined with): take the record's mtime.
                // installed() records what the disk then shows, so a file
                // system that rounds mtimes does not make this repeat.
                installing[path] = record.version
                return [.setModificationTime(record, expected: local)]
            }
            setManifest(path, ManifestEntry(version: record.version, local: local))
            hold(record)
            return []
        }
        if entry?.version == 0, let local,
           !(local.kind == .file && record.kind == .file && local.hash == record.hash && local.size == record.size) {
            // A rejected change whose conflict copy is not made yet: the copy
            // first, the winner after. (Bytes the index now has under another
            // mode need no copy: the fetch below only brings the mode.)
            return askConflictCopy(path, local)
        }
        if record.origin == node && record.holders == [node] {
            // Our own put, committed after a restart (or twice), of bytes we no
            // longer have: no node can serve it. What we have now replaces it.
            propose(path, local, base: record.version)
            return []
        }
        if let local, local.kind == .file, record.kind == .file, local.size == record.size, local.hash == record.hash {
            // The record's bytes under another mode (a chmod elsewhere):
            // mode and mtime are set here, nothing is fetched.
            installing[path] = record.version
            return [.setModificationTime(record, expected: local)]
        }
        installing[path] = record.version
        switch record.kind {
        case .file: return [.fetch(record, expected: local)]
        case .directory: return [.makeDirectory(record, expected: local)]
        case .symlink: return [.makeSymlink(record, expected: local)]
        case .deleted: return []
        }
    }

    // MARK: replay

    /// Paths whose reconciling waits for the end of the replay (`beginReplay`),
    /// and paths looked at meanwhile, to look at again then.
    private var replayed: PathSet?
    private var lookAgain = PathSet()

    /// At start-up the node applies again the log it had applied before it
    /// stopped (all of it since the last snapshot). On the way the index
    /// passes through states the disk left long ago, such as a folder made,
    /// then deleted and forgotten (the manifest no longer mentions it):
    /// acting on them would make it again, and a look would then announce
    /// it to every node. Until `endReplay` a path to reconcile, or a look
    /// at one, is only noted.
    public mutating func beginReplay() { replayed = PathSet() }

    public var isReplaying: Bool { replayed != nil }

    /// The replay reached where the node was: reconciles the noted paths
    /// against the index as it is now, and looks again at those looked at.
    public mutating func endReplay(index: FileIndex) -> [SyncAction] {
        guard let paths = replayed else { return [] }
        replayed = nil
        var actions: [SyncAction] = lookAgain.map { .observe($0) }
        lookAgain = PathSet()
        // Parents before their entries, as `reconcileAll` goes.
        for path in paths.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            actions += reconcile(path, index: index)
        }
        return actions
    }

    /// Reconciles every record (start-up, after a snapshot replaced the index).
    public mutating func reconcileAll(index: FileIndex) -> [SyncAction] {
        var actions: [SyncAction] = []
        for record in index {
            actions += reconcile(record.path, index: index)
        }
        return actions
    }

    // MARK: installs

    /// An install for `version` of `path` finished; the disk now has `local`.
    public mutating func installed(_ path: String, version: UInt64, local: LocalFile?, index: FileIndex) -> [SyncAction] {
        if installing[path] == version { installing[path] = nil }
        setManifest(path, ManifestEntry(version: version, local: local))
        var actions: [SyncAction] = []
        if let record = index.record(at: path), record.version == version {
            hold(record)
        } else {
            actions += reconcile(path, index: index)
        }
        if pendingPuts[path] != nil {
            // A put of this path went out while the install ran (a directory
            // revived for a new file inside it): it announced the state from
            // before the install, and its outcome will say that is what we
            // have. Look again once the outcome is known.
            recheck.insert(path)
            return actions
        }
        if recheck.remove(path) != nil { actions.append(.observe(path)) }
        return actions
    }

    /// An install of `version` of `path` did not happen.
    public mutating func installFailed(_ path: String, version: UInt64, _ failure: InstallFailure, index: FileIndex) -> [SyncAction] {
        if installing[path] == version { installing[path] = nil }
        let changedMeanwhile = recheck.remove(path) != nil
        switch failure {
        case .localChanged: return [.observe(path)]
        // The user changed the path while the install ran: look at it first,
        // or that change is never announced.
        case .transient:
            if changedMeanwhile { return [.observe(path), .retryLater(path)] }
            if let record = index.record(at: path), record.version != version {
                // The index moved on while this ran (a holder refuses the old
                // version once a touch or an edit replaced it): go for the
                // new one now, not after the retry delay.
                return reconcile(path, index: index)
            }
            return [.retryLater(path)]
        }
    }

    /// A fetch of `version` that the node held back (its start-up walk ran,
    /// so what its disk has at `path` was not known) goes on, decided again
    /// against the index as it is now.
    public mutating func heldFetchReleased(_ path: String, version: UInt64, index: FileIndex) -> [SyncAction] {
        if installing[path] == version { installing[path] = nil }
        // The user changed the path meanwhile: look at it first.
        if recheck.remove(path) != nil { return [.observe(path)] }
        return reconcile(path, index: index)
    }

    /// Our losing bytes at `path` now live at `copyPath` (found there as
    /// `local`); announce the copy and fetch the winner.
    ///
    /// The copy is announced from a fresh look, not from `local`: the user may
    /// have moved or changed it between the rename and this report, and the
    /// watcher event saying so may already have been handled (as a path we
    /// knew nothing about). Announcing `local` then commits bytes no disk has.
    /// The node may skip re-hashing when the stat still equals `local`'s.
    public mutating func conflictCopied(_ path: String, to copyPath: String, local: LocalFile?, index: FileIndex) -> [SyncAction] {
        copying.remove(path)
        // The rename left nothing at `path`: known absent, not unknown.
        setManifest(path, ManifestEntry(version: 0, local: nil))
        var actions: [SyncAction] = [.observe(copyPath)]
        if let waiting = blocked.removeValue(forKey: path) { actions += waiting.map { .observe($0) } }
        actions += reconcile(path, index: index)
        if recheck.remove(path) != nil { actions.append(.observe(path)) }
        return actions
    }

    /// A conflict copy was not made: `path` no longer showed what the action
    /// expected (the user changed it meanwhile). Look again: a change is
    /// announced (and loses again); the same stat asks for the copy again.
    public mutating func conflictCopyFailed(_ path: String, index: FileIndex) -> [SyncAction] {
        copying.remove(path)
        recheck.remove(path)
        return [.observe(path)]
    }
}
