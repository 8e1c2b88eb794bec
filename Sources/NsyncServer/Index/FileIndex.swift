/// The replicated state machine: the cluster's full manifest, path ->
/// `FileRecord`. Raft applies each committed `IndexCommand` to it, in log
/// order, on every node; it is deterministic (no clock, no I/O, no
/// randomness, no hash-order dependence) so every node reaches the same state.
/// Owned by the Node on the loop thread; a copy may be handed whole to the
/// thread pool to write a snapshot.
///
/// Who wins a put (a compare-and-set on `baseVersion`):
///
/// | current        | put                          | outcome                         |
/// |----------------|------------------------------|---------------------------------|
/// | absent         | live kind                    | accepted (any base)             |
/// | absent         | deletion                     | alreadyCurrent(0)               |
/// | tombstone      | live kind                    | accepted: re-creation, or an edit that raced the delete (edits beat deletes) |
/// | tombstone      | deletion                     | alreadyCurrent, proposer holds  |
/// | live           | same content (*)             | alreadyCurrent, proposer holds — unless base is current and mtime differs (a touch): accepted |
/// | live           | base == current version      | accepted                        |
/// | live directory | directory, stale base        | accepted (metadata merge, never a conflict) |
/// | live           | anything else, stale base    | rejected(current)               |
///
/// The index is always a tree (the shape rule), checked before the table:
/// a live put under a live file or symlink is rejected with that ancestor's
/// record, and a file or symlink over a directory that still has live
/// entries under it is rejected with the directory's (a directory record
/// made up for the answer when the name itself has none, or a tombstone).
/// Concurrent changes of a name's kind (a file on one node, a directory on
/// another) are decided by commit order like any other conflict; the loser
/// keeps its side as a conflict copy.
///
/// (*) same kind and mode, and same size + hash (files) or target bytes
/// (symlinks). Mtime does not count: two nodes that join with the same file
/// must not produce conflict copies.
///
/// An accepted put makes a new record: version = entry index, origin =
/// command origin, holders = [origin].
public struct FileIndex: Equatable {
    var records: [PathKey: FileRecord] = [:]
    /// The keys of `records` in byte order; brought up to date at the end of
    /// every `apply`, so iteration never sorts the whole index.
    var order = SortedKeys()
    /// Present entries directly under each path that has any (derived from
    /// `records`, for the shape rule). An entry is present when its record
    /// is live, or when present entries are under it: a directory deleted
    /// while an edit inside it won is still there, so a grandchild counts
    /// for its grandparent.
    var liveChildren: [PathKey: Int] = [:]
    /// The keys of the tombstones among `records` (derived from them): the
    /// leader looks for deletions every member holds every 2 s, and walking
    /// 300,000 records for a handful of tombstones took its loop each time.
    var tombstones = Set<PathKey>()
    /// The index of the last entry applied (or that the snapshot covers).
    public internal(set) var appliedIndex: UInt64 = 0
    /// One instance of each holder set in use: most records share one of a
    /// few (every member, the origin alone), where a set of their own cost
    /// about 130 bytes per path. A cache, not part of the index's value.
    private var holderSets: [Set<NodeName>: Set<NodeName>] = [:]

    public init() {}

    public static func == (lhs: FileIndex, rhs: FileIndex) -> Bool {
        lhs.appliedIndex == rhs.appliedIndex && lhs.records == rhs.records && lhs.order == rhs.order
            && lhs.liveChildren == rhs.liveChildren
    }

    /// The shared instance of `holders`.
    mutating func shared(_ holders: Set<NodeName>) -> Set<NodeName> {
        if let instance = holderSets[holders] { return instance }
        // Only members' names make sets: this bound is reached only after
        // much membership churn, and then the cache starts over.
        if holderSets.count >= 256 { holderSets.removeAll() }
        holderSets[holders] = holders
        return holders
    }

    private mutating func addHolder(_ node: NodeName, at key: PathKey) {
        guard var holders = records[key]?.holders, holders.insert(node).inserted else { return }
        records[key]!.holders = shared(holders)
    }

    /// Number of records, tombstones included.
    public var count: Int { records.count }

    /// The record of `path` (compared by bytes), or nil.
    public func record(at path: String) -> FileRecord? {
        records[PathKey(path)]
    }

    /// Applies a committed command: one outcome per change, in order.
    /// `index` is the Raft index of the entry (the new version of what it puts).
    public mutating func apply(_ command: IndexCommand, at index: UInt64) -> [ChangeOutcome] {
        var outcomes: [ChangeOutcome] = []
        outcomes.reserveCapacity(command.changes.count)
        var presence = PresenceChanges()
        if let why = NodeNameRule.violation(in: command.origin) {
            outcomes = command.changes.map { _ in .invalid(reason: "command origin: \(why)") }
        } else {
            for change in command.changes {
                outcomes.append(apply(change, origin: command.origin, index: index, &presence))
            }
        }
        appliedIndex = index
        updateOrder(presence)
        return outcomes
    }

    private mutating func apply(
        _ change: IndexChange, origin: NodeName, index: UInt64, _ presence: inout PresenceChanges
    ) -> ChangeOutcome {
        switch change {
        case let .put(put):
            return applyPut(put, origin: origin, index: index, &presence)
        case let .hold(path, version):
            if let error = IndexPath.violation(in: path) { return .invalid(reason: error.description) }
            let key = PathKey(path)
            guard records[key]?.version == version else { return .stale }
            addHolder(origin, at: key)
            return .accepted(version: version)
        case let .forget(path, version):
            if let error = IndexPath.violation(in: path) { return .invalid(reason: error.description) }
            let key = PathKey(path)
            guard let current = records[key], current.isTombstone, current.version == version else { return .stale }
            records[key] = nil
            tombstones.remove(key)
            presence.note(key, wasPresent: true)
            return .accepted(version: version)
        }
    }

    private mutating func applyPut(
        _ put: PutChange, origin: NodeName, index: UInt64, _ presence: inout PresenceChanges
    ) -> ChangeOutcome {
        if let why = put.violation() { return .invalid(reason: why) }
        let key = PathKey(put.path)
        if put.kind.isLive, let blocker = nonDirectoryAncestor(of: put.path) {
            return .rejected(current: blocker)
        }
        if put.kind.isLive, put.kind != .directory, liveChildren[key, default: 0] > 0,
           records[key].map({ !$0.kind.isLive }) ?? true {
            // Live entries under a name that has no live record (a directory
            // deleted while an edit inside it won, or never announced): they
            // make it a directory, which a file or symlink cannot replace.
            return .rejected(current: FileRecord(
                path: put.path, version: records[key]?.version ?? 0, kind: .directory, size: 0, mode: 0o755,
                mtime: 0, hash: [], target: "", origin: records[key]?.origin ?? origin, holders: []))
        }
        guard let current = records[key] else {
            // Absent: nothing to delete; anything else is new (a base > 0 means
            // the proposer saw a tombstone since forgotten: the edit still wins).
            guard put.kind.isLive else { return .alreadyCurrent(version: 0) }
            presence.note(key, wasPresent: false)
            store(Self.record(from: put, origin: origin, index: index, holders: shared([origin])), at: key, replacing: nil)
            return .accepted(version: index)
        }
        if current.isTombstone {
            guard put.kind.isLive else {
                addHolder(origin, at: key)
                return .alreadyCurrent(version: current.version)
            }
            store(Self.record(from: put, origin: origin, index: index, holders: shared([origin])), at: key, replacing: current)
            return .accepted(version: index)
        }
        if current.kind == .directory, put.kind.isLive, put.kind != .directory, liveChildren[key, default: 0] > 0 {
            // Entries under the directory are still live (an edit that beat
            // the proposer's delete, or one it has not seen): they win.
            return .rejected(current: current)
        }
        let baseIsCurrent = put.baseVersion == current.version
        if isSameContent(put.kind, put.size, put.mode, put.hash, put.target, as: current)
            && (!baseIsCurrent || put.mtime == current.mtime) {
            addHolder(origin, at: key)
            return .alreadyCurrent(version: current.version)
        }
        if baseIsCurrent || (put.kind == .directory && current.kind == .directory) {
            store(Self.record(from: put, origin: origin, index: index, holders: shared([origin])), at: key, replacing: current)
            if put.kind == .deleted {
                // A tombstone remembers the bytes it deleted, so a node that
                // lost track of its disk (a crash before its manifest was
                // saved) can tell a stale copy of them from a new edit.
                records[key]!.hash = current.hash
            }
            return .accepted(version: index)
        }
        return .rejected(current: current)
    }

    /// The nearest ancestor of `path` whose record is a live file or symlink.
    func nonDirectoryAncestor(of path: String) -> FileRecord? {
        var ancestor = Substring(path)
        while let slash = ancestor.utf8.lastIndex(of: UInt8(ascii: "/")) {
            ancestor = ancestor[..<slash]
            if let record = records[PathKey(String(ancestor))], record.kind.isLive, record.kind != .directory {
                return record
            }
        }
        return nil
    }

    /// Puts `record` at `key`, keeping `liveChildren` in step.
    mutating func store(_ record: FileRecord, at key: PathKey, replacing previous: FileRecord?) {
        records[key] = record
        if record.isTombstone { tombstones.insert(key) } else { tombstones.remove(key) }
        let below = liveChildren[key] != nil
        let was = (previous?.kind.isLive ?? false) || below
        let now = record.kind.isLive || below
        if was != now { countPresentChild(of: record.path, by: now ? 1 : -1) }
    }

    /// Whether live records are below `path` (however deep).
    public func hasLiveEntries(under path: String) -> Bool {
        liveChildren[PathKey(path)] != nil
    }

    /// Whether a live record below `path` is a version `node` does not hold:
    /// an edit that node had not seen (a walk of the entries below `path`).
    public func hasLiveEntry(under path: String, notHeldBy node: NodeName) -> Bool {
        guard hasLiveEntries(under: path) else { return false }
        let prefix = Array((path + "/").utf8)
        var keys = order.keys(from: PathKey(path + "/"))
        while let key = keys.next(), key.path.utf8.starts(with: prefix) {
            if let record = records[key], record.kind.isLive, !record.holders.contains(node) { return true }
        }
        return false
    }

    /// Adds `delta` to the present-entry count of `path`'s parent directory,
    /// and on up while a parent without a live record of its own starts or
    /// stops being present.
    private mutating func countPresentChild(of path: String, by delta: Int) {
        var path = Substring(path)
        while let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) {
            path = path[..<slash]
            let parent = PathKey(String(path))
            let before = liveChildren[parent, default: 0]
            let count = before + delta
            liveChildren[parent] = count > 0 ? count : nil
            if (before > 0) == (count > 0) || records[parent]?.kind.isLive == true { return }
        }
    }

    private static func record(from put: PutChange, origin: NodeName, index: UInt64,
                               holders: Set<NodeName>) -> FileRecord {
        FileRecord(
            path: put.path, version: index, kind: put.kind,
            size: put.kind == .file ? put.size : 0,
            mode: put.kind.isLive ? put.mode : 0,
            mtime: put.mtime, hash: put.hash, target: put.target,
            origin: origin, holders: holders)
    }
}

// MARK: - path order

extension FileIndex {
    /// Keys whose presence changed during one apply, with their presence before it.
    struct PresenceChanges {
        var before: [PathKey: Bool] = [:]

        mutating func note(_ key: PathKey, wasPresent: Bool) {
            if before[key] == nil { before[key] = wasPresent }
        }
    }

    /// Brings `order` in line with `records` after an apply: each key that
    /// appeared or went is inserted or removed on its own, a few comparisons
    /// and at most a chunk of keys moved each, whatever the index's size.
    private mutating func updateOrder(_ presence: PresenceChanges) {
        for (key, wasPresent) in presence.before {
            let isPresent = records[key] != nil
            if wasPresent && !isPresent { order.remove(key) }
            if !wasPresent && isPresent { order.insert(key) }
        }
    }
}

// MARK: - iteration and queries for the reconciler

extension FileIndex: Sequence {
    /// Walks the records in path byte order (a directory before its contents).
    public struct Iterator: IteratorProtocol {
        var keys: SortedKeys.Iterator
        let records: [PathKey: FileRecord]

        public mutating func next() -> FileRecord? {
            guard let key = keys.next() else { return nil }
            return records[key]
        }
    }

    public func makeIterator() -> Iterator {
        Iterator(keys: order.makeIterator(), records: records)
    }

    public var underestimatedCount: Int { records.count }

    /// Tombstones that every one of `members` holds (has removed on disk): the
    /// leader proposes `.forget` for them. None when `members` is empty.
    public func tombstonesHeldByAll(members: [NodeName]) -> [(path: String, version: UInt64)] {
        guard !members.isEmpty else { return [] }
        var ready: [PathKey] = []
        for key in tombstones {
            if let record = records[key], members.allSatisfy(record.holders.contains) { ready.append(key) }
        }
        return ready.sorted().map { (path: $0.path, version: records[$0]!.version) }
    }

    /// Records (tombstones included) whose current version `node` does not
    /// hold: what its reconciler must fetch, create or delete. In path order,
    /// so parent directories come before their contents.
    public func records(notHeldBy node: NodeName) -> [FileRecord] {
        filter { !$0.holders.contains(node) }
    }
}
