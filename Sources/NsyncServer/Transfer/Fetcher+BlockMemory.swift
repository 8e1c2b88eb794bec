import Collections

/// Block digests remembered by content: a file edited in place again and
/// again (a database, a disk image) is hashed block by block before each
/// fetch, which for a 10 GiB image is seconds of reading and hashing per
/// edit on every receiver. The digests of a version this node fetched by
/// blocks come almost free (the unchanged blocks' digests are the held
/// version's, only the blocks received are hashed), and those of a held
/// version hashed before a fetch are kept too: the next edit's fetch sends
/// them without reading the file.
///
/// Keyed by the version's SHA-256 (and the block size), so an entry can
/// never describe other bytes than the ones that hash had; a file changed
/// behind the manifest's back is caught as before (the held file is
/// checked unchanged when its blocks are copied, and the new version's
/// SHA-256 at the end). Bounded; the least recently used go first. Loop
/// thread only.
struct BlockDigestMemory {
    /// Bytes kept in all: digests (about 512,000 blocks: 64 GiB of files at
    /// 128 KiB) plus `entryOverhead` per entry.
    static let limit = 16 << 20
    /// At most this many entries (each use moves its key in a list this long).
    static let maxEntries = 4_096
    /// The key, the dictionary's and the list's slots, roughly.
    static let entryOverhead = 128

    private struct Key: Hashable {
        var hash: [UInt8]
        var blockSize: UInt32
    }

    private var entries: [Key: BlockDigests] = [:]
    private var order: Deque<Key> = []
    private(set) var bytes = 0

    var count: Int { entries.count }

    /// The digests of the version whose SHA-256 is `hash`, in blocks of `blockSize`.
    mutating func digests(for hash: [UInt8], blockSize: UInt32) -> BlockDigests? {
        let key = Key(hash: hash, blockSize: blockSize)
        guard let digests = entries[key] else { return nil }
        if let at = order.firstIndex(of: key) {
            order.remove(at: at)
            order.append(key)
        }
        return digests
    }

    mutating func remember(_ digests: BlockDigests, for hash: [UInt8]) {
        guard hash.count == SHA256.digestLength,
              digests.digests.count + BlockDigestMemory.entryOverhead <= BlockDigestMemory.limit else { return }
        let key = Key(hash: hash, blockSize: digests.blockSize)
        if let old = entries.updateValue(digests, forKey: key) {
            bytes -= old.digests.count + BlockDigestMemory.entryOverhead
            order.removeAll { $0 == key }
        }
        bytes += digests.digests.count + BlockDigestMemory.entryOverhead
        order.append(key)
        while bytes > BlockDigestMemory.limit || entries.count > BlockDigestMemory.maxEntries,
              let oldest = order.popFirst() {
            if let old = entries.removeValue(forKey: oldest) {
                bytes -= old.digests.count + BlockDigestMemory.entryOverhead
            }
        }
    }

    /// Drops what is remembered for the version whose SHA-256 is `hash`: its
    /// file turned out not to hold those bytes.
    mutating func forget(_ hash: [UInt8]) {
        let gone = order.filter { $0.hash == hash }
        guard !gone.isEmpty else { return }
        order.removeAll { $0.hash == hash }
        for key in gone {
            if let old = entries.removeValue(forKey: key) {
                bytes -= old.digests.count + BlockDigestMemory.entryOverhead
            }
        }
    }
}

/// Works out the block digests of a version fetched by blocks, from the
/// pieces written in order: a block the holder said was the same has the
/// held version's digest; a block received is hashed as it is written.
/// Anything unexpected (a piece off a block boundary, a gap) makes it give
/// up: the result is then nil and nothing is remembered. Used by the
/// transfer's write jobs, which run one at a time, on the pool.
final class BlockDigestBuilder {
    private let held: BlockDigests
    private let size: UInt64
    private let blockSize: UInt64
    private var digests: [UInt8]
    /// Bytes accounted for, in order.
    private var next: UInt64 = 0
    private var current: SHA256?
    private var failed = false

    init(held: BlockDigests, newSize: UInt64) {
        self.held = held
        size = newSize
        blockSize = UInt64(held.blockSize)
        digests = []
        digests.reserveCapacity(Int((newSize + blockSize - 1) / blockSize) * SHA256.digestLength)
    }

    func add(_ pieces: [Fetcher.Piece]) {
        for piece in pieces where !failed {
            guard piece.offset == next else {
                failed = true
                return
            }
            switch piece {
            case .held(let offset, let length):
                // `.same` runs cover whole blocks of the held version's digests.
                guard current == nil, offset % blockSize == 0,
                      length % blockSize == 0 || offset + length == size else {
                    failed = true
                    return
                }
                let first = Int(offset / blockSize)
                let last = Int((offset + length + blockSize - 1) / blockSize)
                guard last <= held.count else {
                    failed = true
                    return
                }
                let width = SHA256.digestLength
                digests += held.digests[(first * width)..<(last * width)]
                next += length
            case .bytes(_, let bytes):
                add(bytes)
            case let .zeros(offset, length):
                for slice in Zeros.slices(from: offset, length: length) { add(slice.bytes) }
            }
        }
    }

    private func add(_ bytes: ArraySlice<UInt8>) {
        var rest = bytes
        while !rest.isEmpty {
            let hasher = current ?? SHA256()
            let blockEnd = min(size, (next / blockSize + 1) * blockSize)
            let take = Int(min(UInt64(rest.count), blockEnd - next))
            hasher.update(rest.prefix(take))
            rest = rest.dropFirst(take)
            next += UInt64(take)
            if next == blockEnd {
                digests += hasher.finalize()
                current = nil
            } else {
                current = hasher
            }
        }
    }

    /// The new version's digests once every byte is accounted for.
    var result: BlockDigests? {
        guard !failed, current == nil, next == size,
              digests.count == Int((size + blockSize - 1) / blockSize) * SHA256.digestLength else { return nil }
        return BlockDigests(blockSize: UInt32(blockSize), digests: digests)
    }
}
