@testable import NsyncServer

/// One simulated node's synced directory: path -> what a stat (and a hash)
/// would show there. Knows the tree rules the real file system enforces (a
/// path needs directory ancestors; only an empty directory can be removed;
/// a directory's mtime moves when an entry is added or removed). Names are
/// bytes, as on Linux: "caf\u{E9}" and "cafe\u{301}" are two entries, which
/// Swift's `String` equality (canonical equivalence) would merge. Test only.
struct ReconcilerFakeDisk {
    private(set) var entries = PathMap<LocalFile>()
    /// Every path, in byte order (so a replay visits them in the same order),
    /// kept sorted as entries come and go: sorting on every look was most of
    /// the simulation's time.
    private(set) var paths: [String] = []

    subscript(path: String) -> LocalFile? { entries[path] }

    static func sortedByBytes(_ paths: [String]) -> [String] {
        paths.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// Whether `path` is below `directory`, comparing bytes.
    static func isInside(_ path: String, _ directory: String) -> Bool {
        path.utf8.count > directory.utf8.count + 1 && path.utf8.starts(with: (directory + "/").utf8)
    }

    static func parent(of path: String) -> String? {
        path.lastIndex(of: "/").map { String(path[..<$0]) }
    }

    /// Every proper ancestor of `path`, outermost first.
    static func ancestors(of path: String) -> [String] {
        var result: [String] = []
        var current = path
        while let parent = parent(of: current) {
            result.append(parent)
            current = parent
        }
        return result.reversed()
    }

    func hasChildren(_ directory: String) -> Bool {
        entries.keys.contains { Self.isInside($0, directory) }
    }

    /// `directory`'s descendants, deepest first (the order `rm -r` removes them).
    func descendants(of directory: String) -> [String] {
        // Ties broken by bytes: dictionary order differs between runs, and a replay must not.
        Self.sortedByBytes(entries.keys.filter { Self.isInside($0, directory) }).sorted { $0.utf8.count > $1.utf8.count }
    }

    /// Whether every ancestor of `path` exists as a directory.
    func parentsAreDirectories(of path: String) -> Bool {
        Self.ancestors(of: path).allSatisfy { entries[$0]?.kind == .directory }
    }

    /// Creates the missing ancestors of `path` (mode 0o755, like `mkdir -p`);
    /// nil when one exists but is not a directory. Returns the paths created.
    mutating func makeParents(of path: String, clock: inout Int64, inodes: inout UInt64) -> [String]? {
        var created: [String] = []
        for ancestor in Self.ancestors(of: path) {
            if let existing = entries[ancestor] {
                guard existing.kind == .directory else { return nil }
                continue
            }
            clock += 1
            inodes += 1
            set(ancestor, LocalFile(kind: .directory, mode: 0o755, mtime: clock, inode: inodes), clock: clock)
            created.append(ancestor)
        }
        return created
    }

    /// Puts `local` at `path` (nil removes it), moving the parent's mtime
    /// when an entry appears or disappears.
    mutating func set(_ path: String, _ local: LocalFile?, clock: Int64) {
        let existed = entries[path] != nil
        entries[path] = local
        if existed != (local != nil) {
            var low = 0
            var high = paths.count
            while low < high {
                let middle = (low + high) / 2
                if paths[middle].utf8.lexicographicallyPrecedes(path.utf8) { low = middle + 1 } else { high = middle }
            }
            if local == nil { paths.remove(at: low) } else { paths.insert(path, at: low) }
        }
        if existed != (local != nil), let parent = Self.parent(of: path), entries[parent] != nil {
            entries[parent]!.mtime = clock
        }
    }
}

/// The node's precondition for an install: the disk still shows what the
/// reconciler expected. Files and links by stat (every write moves mtime or
/// inode); directories by kind and mode only, since their mtime moves with
/// every entry added or removed, which is not a change of the directory.
func reconcilerDiskMatches(_ disk: LocalFile?, _ expected: LocalFile?) -> Bool {
    switch (disk, expected) {
    case (nil, nil):
        return true
    case let (disk?, expected?):
        if disk.kind == .directory && expected.kind == .directory { return disk.mode == expected.mode }
        return disk.sameStat(as: expected) && disk.hash == expected.hash
    default:
        return false
    }
}

/// User content in the simulation: content number `id` is the bytes
/// "content-<id>", named by their SHA-256 as the real scanner names them.
enum ReconcilerTestContent {
    static func bytes(_ id: UInt64) -> [UInt8] { Array("content-\(id)".utf8) }

    static func hash(_ id: UInt64) -> [UInt8] { SHA256.hash(bytes(id)) }

    static func size(_ id: UInt64) -> UInt64 { UInt64(bytes(id).count) }
}
