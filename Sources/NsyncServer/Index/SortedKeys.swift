/// The index's keys in byte order, as a list of sorted chunks of at most
/// `chunkLimit` keys each. Inserting or removing one key compares about
/// log2(count) keys and moves at most one chunk's worth; one sorted array
/// moved (or, merging a batch, compared and copied) every key of the index
/// on each apply, which at 300,000 paths held the event loop for seconds
/// and cost the cluster its leader. A plain value; equal when the keys are,
/// however they are chunked.
struct SortedKeys: Equatable, Sequence {
    /// A chunk grown past this splits in two halves.
    static let chunkLimit = 1024
    /// A chunk shrunk below this is merged into its neighbour when both fit in one.
    static let mergeBelow = chunkLimit / 4

    private var chunks: [[PathKey]] = []
    private(set) var count = 0

    init() {}

    static func == (lhs: SortedKeys, rhs: SortedKeys) -> Bool {
        lhs.count == rhs.count && lhs.elementsEqual(rhs)
    }

    var last: PathKey? { chunks.last?.last }

    var isEmpty: Bool { count == 0 }

    /// Adds `key`, which must be above every key held (a snapshot's keys, in order).
    mutating func append(_ key: PathKey) {
        precondition(last.map { $0 < key } ?? true, "SortedKeys.append out of order")
        if chunks.isEmpty || chunks[chunks.count - 1].count >= Self.chunkLimit {
            chunks.append([])
            chunks[chunks.count - 1].reserveCapacity(Self.chunkLimit)
        }
        chunks[chunks.count - 1].append(key)
        count += 1
    }

    /// Adds `key`, which must not be held.
    mutating func insert(_ key: PathKey) {
        guard !chunks.isEmpty else {
            chunks = [[key]]
            count = 1
            return
        }
        let chunk = chunkIndex(for: key)
        let position = Self.insertionPoint(of: key, in: chunks[chunk])
        precondition(position == chunks[chunk].count || chunks[chunk][position] != key, "SortedKeys.insert of a held key")
        chunks[chunk].insert(key, at: position)
        count += 1
        if chunks[chunk].count > Self.chunkLimit {
            let upper = Array(chunks[chunk][(Self.chunkLimit / 2)...])
            chunks[chunk].removeSubrange((Self.chunkLimit / 2)...)
            chunks.insert(upper, at: chunk + 1)
        }
    }

    /// Removes `key`; false when it was not held.
    @discardableResult
    mutating func remove(_ key: PathKey) -> Bool {
        guard !chunks.isEmpty else { return false }
        let chunk = chunkIndex(for: key)
        let position = Self.insertionPoint(of: key, in: chunks[chunk])
        guard position < chunks[chunk].count, chunks[chunk][position] == key else { return false }
        chunks[chunk].remove(at: position)
        count -= 1
        if chunks[chunk].isEmpty {
            chunks.remove(at: chunk)
        } else if chunks[chunk].count < Self.mergeBelow, chunk + 1 < chunks.count,
                  chunks[chunk].count + chunks[chunk + 1].count <= Self.chunkLimit {
            let next = chunks.remove(at: chunk + 1)
            chunks[chunk].append(contentsOf: next)
        }
        return true
    }

    /// The keys from the first one not below `key`, in order.
    func keys(from key: PathKey) -> Iterator {
        guard !chunks.isEmpty else { return Iterator(chunks: chunks, chunk: 0, offset: 0) }
        let chunk = chunkIndex(for: key)
        return Iterator(chunks: chunks, chunk: chunk, offset: Self.insertionPoint(of: key, in: chunks[chunk]))
    }

    func makeIterator() -> Iterator {
        Iterator(chunks: chunks, chunk: 0, offset: 0)
    }

    var underestimatedCount: Int { count }

    struct Iterator: IteratorProtocol {
        fileprivate let chunks: [[PathKey]]
        fileprivate var chunk: Int
        fileprivate var offset: Int

        mutating func next() -> PathKey? {
            while chunk < chunks.count {
                if offset < chunks[chunk].count {
                    defer { offset += 1 }
                    return chunks[chunk][offset]
                }
                chunk += 1
                offset = 0
            }
            return nil
        }
    }

    /// The chunk where `key` is or would go: the first whose last key is not
    /// below it, or the last chunk for a key above them all. Chunks are never empty.
    private func chunkIndex(for key: PathKey) -> Int {
        var low = 0
        var high = chunks.count - 1
        while low < high {
            let middle = (low + high) / 2
            if chunks[middle][chunks[middle].count - 1] < key { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// The first position in the sorted `keys` whose key is not below `key`.
    static func insertionPoint(of key: PathKey, in keys: [PathKey]) -> Int {
        var low = 0
        var high = keys.count
        while low < high {
            let middle = (low + high) / 2
            if keys[middle] < key { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
