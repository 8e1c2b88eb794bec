/// What a node sees under PATH and does not sync (FIFOs, sockets and device
/// nodes, names that are not UTF-8, directories it cannot read), by path,
/// for the log and `nsyncd status`. Scans set it (a whole scan replaces
/// it, a subtree's scan the part below), the watcher adds what arrives and
/// removes what goes; what the watcher noted after a scan began wins over
/// the scan's walk (the caller drops what the walk found and is gone). At
/// most `limit` are kept; past that, more are only counted as "at least"
/// until a scan finds fewer. Names that are not UTF-8 are kept by their
/// display path (U+FFFD for each bad byte), so two that differ only there
/// are one entry. Value type.
struct NotSyncedEntries {
    static let limit = 10_000
    /// A path logged again within this long (loop ms) is logged at debug: a
    /// program that makes and removes a socket over and over is said once.
    static let relogInterval: UInt64 = 600_000

    /// Each entry with the change count at which it was noted.
    private var noted: [String: (entry: SkippedEntry, change: UInt64)] = [:]
    /// How many noted entries lie below each directory that has some: a
    /// directory removed with nothing noted below costs no walk of `noted`.
    private var below: [String: Int] = [:]
    /// Counts inserts, and scans begun, so that one can be ordered against
    /// the other within a loop turn (loop time would tie).
    private var changes: UInt64 = 0
    private var loggedAt: [String: UInt64] = [:]
    /// More were seen than `limit`: `count` is a lower bound.
    private(set) var isTruncated = false

    var count: Int { noted.count }
    var isEmpty: Bool { noted.isEmpty }
    subscript(path: String) -> SkippedEntry? { noted[path]?.entry }

    /// A scan begins walking now; give the result to `replace`.
    mutating func scanBegins() -> UInt64 {
        changes += 1
        return changes
    }

    /// Notes `entry`; true when its path was not noted already (or for
    /// another reason).
    @discardableResult
    mutating func insert(_ entry: SkippedEntry) -> Bool {
        changes += 1
        if let known = noted[entry.path] {
            noted[entry.path] = (entry, changes)
            return known.entry != entry
        }
        guard noted.count < Self.limit else {
            isTruncated = true
            return true
        }
        noted[entry.path] = (entry, changes)
        forEachDirectory(above: entry.path) { below[$0, default: 0] += 1 }
        return true
    }

    /// `path` is gone, and everything below it for a directory.
    mutating func remove(_ path: String, isDirectory: Bool = false) {
        guard !noted.isEmpty else { return }
        forget(path)
        guard isDirectory, below[path] != nil else { return }
        let prefix = path + "/"
        for key in noted.keys where key.hasPrefix(prefix) { forget(key) }
    }

    /// A look found something syncable at `path`: it is no longer noted,
    /// unless it is a directory noted as unreadable (stat works, listing
    /// does not); true when it stays so.
    @discardableResult
    mutating func looked(_ path: String, isDirectory: Bool) -> Bool {
        guard let known = noted[path] else { return false }
        if isDirectory, case .unreadable = known.entry.reason { return true }
        forget(path)
        return false
    }

    /// What a scan of `directory` ("" for the whole tree) that began at
    /// `began` (`scanBegins`) found, with paths relative to PATH: replaces
    /// what was noted there before it began. Returns the entries not noted
    /// before.
    mutating func replace(below directory: String, with found: [SkippedEntry], began: UInt64) -> [SkippedEntry] {
        let prefix = directory + "/"
        var before: [String: SkippedEntry] = [:]
        for (path, known) in noted
        where directory.isEmpty || path == directory || path.hasPrefix(prefix) {
            before[path] = known.entry
            if known.change < began { forget(path) }
        }
        if directory.isEmpty { isTruncated = false }
        var new: [SkippedEntry] = []
        for entry in found where noted[entry.path] == nil {
            if insert(entry) && before[entry.path] != entry { new.append(entry) }
        }
        return new
    }

    /// Whether a line about `path` is due at info level now (not said in
    /// the last `relogInterval` ms); notes that it is said.
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

    private mutating func forget(_ path: String) {
        guard noted.removeValue(forKey: path) != nil else { return }
        forEachDirectory(above: path) { directory in
            if let n = below[directory], n > 1 { below[directory] = n - 1 } else { below[directory] = nil }
        }
    }

    private func forEachDirectory(above path: String, _ body: (String) -> Void) {
        var current = Substring(path)
        while let slash = current.lastIndex(of: "/") {
            current = current[..<slash]
            body(String(current))
        }
    }
}
