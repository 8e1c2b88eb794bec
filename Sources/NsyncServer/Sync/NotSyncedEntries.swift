/// What a node sees under PATH and does not sync (FIFOs, sockets and device
/// nodes, names that are not UTF-8, directories it cannot read), by path,
/// for the log and `nsyncd status`. Scans set it (a whole scan replaces
/// it, a subtree's scan the part below), the watcher adds what arrives and
/// removes what goes. At most `limit` are kept; past that, more are only
/// counted as "at least" until a scan finds fewer. Value type.
struct NotSyncedEntries {
    static let limit = 10_000

    private(set) var entries: [String: SkippedEntry] = [:]
    /// More were seen than `limit`: `count` is a lower bound.
    private(set) var isTruncated = false

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }

    /// Notes `entry`; true when its path was not noted already (log it).
    @discardableResult
    mutating func insert(_ entry: SkippedEntry) -> Bool {
        if entries[entry.path] == entry { return false }
        let isNew = entries[entry.path] == nil
        guard !isNew || entries.count < Self.limit else {
            isTruncated = true
            return true
        }
        entries[entry.path] = entry
        return isNew
    }

    mutating func remove(_ path: String) {
        if !entries.isEmpty { entries[path] = nil }
    }

    /// Removes `path` and everything below it.
    mutating func removeTree(_ path: String) {
        guard !entries.isEmpty else { return }
        let prefix = path + "/"
        entries = entries.filter { $0.key != path && !$0.key.hasPrefix(prefix) }
    }

    /// What a scan found below `directory` ("" for the whole tree), with
    /// paths relative to PATH: replaces what was noted there. Returns the
    /// entries not noted before (log them).
    mutating func replace(below directory: String, with found: [SkippedEntry]) -> [SkippedEntry] {
        var before = entries
        if directory.isEmpty {
            entries = [:]
            isTruncated = false
        } else {
            removeTree(directory)
        }
        var new: [SkippedEntry] = []
        for entry in found {
            let wasNoted = before.removeValue(forKey: entry.path) == entry
            if insert(entry) && !wasNoted { new.append(entry) }
        }
        return new
    }

    /// The first `n` by path.
    func first(_ n: Int) -> [SkippedEntry] {
        entries.keys.sorted().prefix(n).compactMap { entries[$0] }
    }
}
