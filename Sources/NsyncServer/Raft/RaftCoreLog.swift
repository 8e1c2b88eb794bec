/// The Raft core's in-memory log: the entries after `offset` (the last index a
/// snapshot or compaction removed), held in one contiguous array so looking up
/// an index is arithmetic, never a scan. Part of the `Raft` value (loop thread).
struct RaftCoreLog: Sendable {
    /// Index of the entry just before `entries[0]` (0 for an empty history).
    private(set) var offset: UInt64
    /// Term of the entry at `offset`: the snapshot's term, or the compacted entry's.
    private(set) var offsetTerm: UInt64
    private(set) var entries: [RaftEntry] = []

    init(offset: UInt64 = 0, offsetTerm: UInt64 = 0) {
        self.offset = offset
        self.offsetTerm = offsetTerm
    }

    var firstIndex: UInt64 { offset + 1 }
    var lastIndex: UInt64 { offset + UInt64(entries.count) }
    var lastTerm: UInt64 { entries.last?.term ?? offsetTerm }

    /// The term of the entry at `index`, or nil if it is compacted or not yet there.
    func term(at index: UInt64) -> UInt64? {
        if index == offset { return offsetTerm }
        guard index > offset, index <= lastIndex else { return nil }
        return entries[Int(index - offset - 1)].term
    }

    func entry(at index: UInt64) -> RaftEntry? {
        guard index > offset, index <= lastIndex else { return nil }
        return entries[Int(index - offset - 1)]
    }

    /// Entries `from...through`; both must be within `firstIndex...lastIndex`.
    func slice(from: UInt64, through: UInt64) -> ArraySlice<RaftEntry> {
        precondition(from > offset && through <= lastIndex, "log slice \(from)...\(through) outside \(firstIndex)...\(lastIndex)")
        guard from <= through else { return [] }
        return entries[Int(from - offset - 1)...Int(through - offset - 1)]
    }

    /// Entries from `from` on, stopping before `maxBytes` of data is exceeded
    /// (at least one entry when any exists). Empty when `from > lastIndex`.
    func entries(from: UInt64, maxBytes: Int) -> [RaftEntry] {
        guard from > offset, from <= lastIndex else { return [] }
        let start = Int(from - offset - 1)
        var end = start
        var bytes = 0
        while end < entries.count {
            let size = entries[end].data.count + 24
            if end > start && bytes + size > maxBytes { break }
            bytes += size
            end += 1
        }
        return Array(entries[start..<end])
    }

    mutating func append(_ entry: RaftEntry) {
        assert(entry.index == lastIndex + 1, "append of \(entry.index) after \(lastIndex)")
        entries.append(entry)
    }

    /// Replaces everything from `newEntries.first.index` on with `newEntries`.
    mutating func truncateAndAppend(_ newEntries: ArraySlice<RaftEntry>) {
        guard let first = newEntries.first else { return }
        precondition(first.index > offset && first.index <= lastIndex + 1,
                     "entries at \(first.index) do not attach to log \(firstIndex)...\(lastIndex)")
        if first.index <= lastIndex { entries.removeLast(Int(lastIndex - first.index + 1)) }
        entries.append(contentsOf: newEntries)
    }

    /// Drops entries up to `index` (which must be in the log); its term becomes `offsetTerm`.
    mutating func compact(through index: UInt64) {
        guard index > offset else { return }
        precondition(index <= lastIndex, "compaction to \(index) past last index \(lastIndex)")
        offsetTerm = term(at: index)!
        entries.removeFirst(Int(index - offset))
        offset = index
    }

    /// Discards the whole log: it now starts after a snapshot at `index`/`term`.
    mutating func reset(offset index: UInt64, term: UInt64) {
        entries.removeAll()
        offset = index
        offsetTerm = term
    }

    /// The last index at or below `index` whose term is at most `term`, with its
    /// term (nil when that is below the log). Used on both sides of an append
    /// rejection to skip a whole conflicting term per round trip.
    func lastIndex(atOrBelow index: UInt64, withTermAtMost term: UInt64) -> (index: UInt64, term: UInt64?) {
        var i = min(index, lastIndex)
        if i < offset { return (i, nil) }
        while i > offset, entries[Int(i - offset - 1)].term > term { i -= 1 }
        return (i, self.term(at: i))
    }
}
