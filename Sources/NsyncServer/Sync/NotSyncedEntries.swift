/// What a node sees under PATH and does not sync (FIFOs, sockets and device
/// nodes, names that are not UTF-8, directories it cannot read), by path,
/// for the log and `nsyncd status`. Scans set it (a whole scan replaces
/// it, a subtree's scan the part below), the watcher adds what arrives and
/// removes what goes; what the watcher saw while a scan walked wins over
/// the walk. At most `limit` are kept; past that, more are only counted as
/// "at least" until a scan finds fewer. Names that are not UTF-8 are kept
/// by their display path (U+FFFD for each bad byte), so two that differ
/// only there are one entry. Times are loop milliseconds. Value type.
struct NotSyncedEntries {
    static let limit = 10_000
    /// A path logged again within this long is logged at debug: a program
    /// that makes and removes a socket over and over is said once.
    static let relogInterval: UInt64 = 600_000

    private var noted: [String: (entry: SkippedEntry, at: UInt64)] = [:]
    /// Paths removed lately (bounded): a scan that walked before a removal
    /// does not bring them back.
    private var removedAt: [String: UInt64] = [:]
    private var loggedAt: [String: UInt64] = [:]
    /// More were seen than `limit`: `count` is a lower bound.
    private(set) var isTruncated = false

    var count: Int { noted.count }
    var isEmpty: Bool { noted.isEmpty }
    subscript(path: String) -> SkippedEntry? { noted[path]?.entry }

    /// Notes `entry`, seen at `now`; true when its path was not noted already.
    @discardableResult
    mutating func insert(_ entry: SkippedEntry, now: UInt64) -> Bool {
        if let known = noted[entry.path] {
            noted[entry.path] = (entry, now)
            return known.entry != entry
        }
        guard noted.count < Self.limit else {
            isTruncated = true
            return true
        }
        noted[entry.path] = (entry, now)
        return true
    }

    /// `path` is gone (and everything below it, for a directory).
    mutating func remove(_ path: String, isDirectory: Bool = false, now: UInt64) {
        if removedAt.count >= Self.limit { removedAt.removeAll() }
        removedAt[path] = now
        guard !noted.isEmpty else { return }
        noted[path] = nil
        if isDirectory {
            let prefix = path + "/"
            noted = noted.filter { !$0.key.hasPrefix(prefix) }
        }
    }

    /// A look found something syncable at `path`: it is no longer noted,
    /// unless it is a directory noted as unreadable (stat works, listing
    /// does not: the next scan says).
    mutating func looked(_ path: String, isDirectory: Bool) {
        guard let known = noted[path] else { return }
        if isDirectory, case .unreadable = known.entry.reason { return }
        noted[path] = nil
    }

    /// What a scan of `directory` ("" for the whole tree), started at
    /// `startedAt`, found, with paths relative to PATH: replaces what was
    /// noted there before the scan started. Returns the entries not noted
    /// before.
    mutating func replace(below directory: String, with found: [SkippedEntry], startedAt: UInt64) -> [SkippedEntry] {
        let prefix = directory + "/"
        let isCovered = { (path: String) in directory.isEmpty || path == directory || path.hasPrefix(prefix) }
        let before = noted
        noted = noted.filter { !isCovered($0.key) || $0.value.at >= startedAt }
        if directory.isEmpty { isTruncated = noted.count >= Self.limit }
        var new: [SkippedEntry] = []
        for entry in found where noted[entry.path] == nil && !removed(entry.path, since: startedAt) {
            if insert(entry, now: startedAt) && before[entry.path]?.entry != entry { new.append(entry) }
        }
        if directory.isEmpty { removedAt = removedAt.filter { $0.value >= startedAt } }
        return new
    }

    /// Whether `path` or a directory above it was removed at `since` or later.
    private func removed(_ path: String, since: UInt64) -> Bool {
        guard !removedAt.isEmpty else { return false }
        var current = Substring(path)
        while true {
            if let at = removedAt[String(current)], at >= since { return true }
            guard let slash = current.lastIndex(of: "/") else { return false }
            current = current[..<slash]
        }
    }

    /// Whether a line about `path` is due at info level now (not said in
    /// the last `relogInterval`); notes that it is said.
    mutating func logDue(_ path: String, now: UInt64) -> Bool {
        if let last = loggedAt[path], now < last + Self.relogInterval { return false }
        if loggedAt.count >= Self.limit {
            loggedAt = loggedAt.filter { now < $0.value + Self.relogInterval }
            if loggedAt.count >= Self.limit { loggedAt.removeAll() }
        }
        loggedAt[path] = now
        return true
    }

    /// The first `n` by path.
    func first(_ n: Int) -> [SkippedEntry] {
        noted.keys.sorted().prefix(n).compactMap { noted[$0]?.entry }
    }
}
