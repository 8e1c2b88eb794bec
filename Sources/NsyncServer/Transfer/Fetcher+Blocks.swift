#if canImport(Glibc)
import Glibc
#endif

/// A new version of a file this node holds in another version of at least
/// its size (a database, a disk image or a document edited in place): the
/// held file's blocks are hashed first, the request carries their digests
/// (`BlockDigests`), and the holder sends only the blocks that differ,
/// `.same` for the others, which are copied from the held file into the
/// `.part` in order, hashed like received bytes. The index's SHA-256 checks
/// the whole file at the end; a version whose copy failed is fetched whole
/// next time (`notExtending`). Loop thread only, but for the jobs on the pool.
extension Fetcher {
    /// Bytes of a transfer, in order: received, or the same as the held
    /// file's at that offset.
    enum Piece {
        case bytes(UInt64, ArraySlice<UInt8>)
        case held(UInt64, UInt64)
        /// All zeros (`.zeros`: a sparse file's hole).
        case zeros(UInt64, UInt64)

        var offset: UInt64 {
            switch self {
            case .bytes(let offset, _), .held(let offset, _), .zeros(let offset, _): offset
            }
        }

        var length: UInt64 {
            switch self {
            case .bytes(_, let bytes): UInt64(bytes.count)
            case .held(_, let length), .zeros(_, let length): length
            }
        }

        /// Its first `count` bytes.
        func prefix(_ count: UInt64) -> Piece {
            switch self {
            case let .bytes(offset, bytes): .bytes(offset, bytes.prefix(Int(count)))
            case let .held(offset, _): .held(offset, count)
            case let .zeros(offset, _): .zeros(offset, count)
            }
        }

        /// All but its first `count` bytes.
        func dropFirst(_ count: UInt64) -> Piece {
            switch self {
            case let .bytes(offset, bytes): .bytes(offset + count, bytes.dropFirst(Int(count)))
            case let .held(offset, length): .held(offset + count, length - count)
            case let .zeros(offset, length): .zeros(offset + count, length - count)
            }
        }
    }

    /// Whether fetching `record` may send the digests of `held`'s blocks:
    /// both files of at least `extendMinimumSize`, the new one not larger
    /// (a larger one is most likely appended to: `mayExtend`), and few
    /// enough blocks for one request.
    static func mayMatchBlocks(_ held: LocalFile, to record: FileRecord) -> Bool {
        record.kind == .file && mayMatchBlocks(held, toSize: record.size)
    }

    /// `mayMatchBlocks` for a new version of `size` bytes.
    static func mayMatchBlocks(_ held: LocalFile, toSize size: UInt64) -> Bool {
        held.kind == .file && mayMatchBlocks(heldSize: held.size, toSize: size)
    }

    /// `mayMatchBlocks` for a held file of `heldSize` bytes.
    static func mayMatchBlocks(heldSize: UInt64, toSize size: UInt64) -> Bool {
        heldSize >= extendMinimumSize && size >= extendMinimumSize && heldSize >= size
            && BlockDigests.blockSize(for: heldSize) != nil
    }

    /// Hashes `held`'s blocks on the pool (or, when its digests are
    /// remembered, only checks on the pool that the file is the one the
    /// manifest saw); then the transfer waits for a holder again, its
    /// requests carrying the digests (or none, when the file changed).
    func hashHeldBlocks(_ transfer: Transfer, _ held: LocalFile) {
        transfer.matching = nil
        let path = transfer.record.path
        guard let blockSize = BlockDigests.blockSize(for: held.size) else {
            waiting.append(transfer)
            return schedule()
        }
        transfer.writing = true
        copiesRunning += 1
        let root = self.root
        prepare(transfer, .hashingBlocks, state: BlockHashing(total: held.size, remembered: rememberedBlocks(of: held))) { state in
            try Fetcher.hashBlocks(&state, of: held, at: path, under: root, blockSize: blockSize)
        } finish: { [self] result in
            transfer.writing = false
            copiesRunning -= 1
            switch result {
            case .success(let state):
                let digests = BlockDigests(blockSize: blockSize, digests: state.digests)
                if state.remembered == nil { blockMemory.remember(digests, for: held.hash) }
                useBlocks(digests, of: held, for: transfer, state.remembered == nil ? "hashed" : "remembered")
            case .failure(let error):
                logger.debug("fetching \(path) whole: cannot hash the blocks of the version held here: \(error)")
            }
            waiting.append(transfer)
            schedule()
        }
    }

    /// One step of hashing `held`'s blocks (on the pool): true while more
    /// remain. The file is checked against `held` first and last, so the
    /// digests are those of the version the manifest saw.
    /// With `laterMtime`, the last check leaves a new mtime to the loop
    /// (`endMtime`): this node's own install of a version with the same
    /// bytes (a touch elsewhere) may set it meanwhile.
    static func hashBlocks(_ state: inout BlockHashing, of held: LocalFile, at path: String, under root: String,
                           blockSize: UInt32, laterMtime: Bool = false) throws -> Bool {
        if state.source == nil {
            state.source = try FileSystem.openBeneath(root: root, path: path)
            try Fetcher.checkUnchanged(state.source!, path, held)
            if let remembered = state.remembered {
                // Hashed before, or fetched here by blocks: nothing to read.
                // A change after this is caught when the blocks are copied.
                state.digests = remembered.digests
                state.offset = held.size
                state.close()
                return false
            }
            state.digests.reserveCapacity(Int((held.size + UInt64(blockSize) - 1) / UInt64(blockSize)) * SHA256.digestLength)
        }
        let source = state.source!
        let stepEnd = min(held.size, state.offset + Fetcher.preparationStep)
        while state.offset < stepEnd {
            let block = try source.read(upToCount: Int(min(UInt64(blockSize), held.size - state.offset)),
                                        at: Int64(state.offset))
            guard !block.isEmpty else {
                throw SystemError(errno: ESTALE, operation: "hash blocks (shorter than it was)", path: path)
            }
            state.digests += SHA256.hash(block)
            state.offset += UInt64(block.count)
        }
        guard state.offset >= held.size else { return true }
        if laterMtime {
            let status = try FileSystem.status(descriptor: source.rawValue, path: path)
            guard status.kind == .regular, UInt64(status.size) == held.size, status.inode == held.inode else {
                throw SystemError(errno: ESTALE, operation: "hash blocks (changed since it was looked at)", path: path)
            }
            state.endMtime = status.modificationTime
        } else {
            try Fetcher.checkUnchanged(source, path, held)
        }
        state.close()
        return false
    }

    /// A new version of `path` is offered (its origin hashes it to announce
    /// it) and the version held here is one its fetch sends block digests
    /// of: hashes the held blocks now, beside the origin's hashing, and
    /// remembers them, so that the fetch asks at once when the version is
    /// announced instead of after one more pass over the file. A file only
    /// touched (the same bytes) costs this pass once per content: the
    /// digests stay remembered, also when the touch's new mtime is set here
    /// during the pass. Only while no other copy or hash runs; a fetch that
    /// needs the copy slot for another file stops it at its next step. A
    /// change to the held file meanwhile drops the digests.
    func hashAhead(_ path: String, _ held: LocalFile) {
        guard rememberedBlocks(of: held) == nil, let blockSize = BlockDigests.blockSize(for: held.size) else { return }
        passAhead(path, held, blockSize: blockSize, .hashingAhead, laterMtime: true,
                  "the blocks of \(path) held here while its origin hashes a new version") { [self] state in
            guard let state else { return }
            if Fetcher.keepsDigests(of: held, endMtime: state.endMtime, manifestNow: hooks.heldFile(path)) {
                blockMemory.remember(BlockDigests(blockSize: blockSize, digests: state.digests), for: held.hash)
                logger.debug("hashed the blocks of \(path) held here ahead of its new version")
            } else {
                logger.debug("did not hash the blocks of \(path) ahead: it changed meanwhile")
            }
        }
    }

    /// Runs a pass over the blocks of `file` at `path` in the copy slot
    /// (`hashingAhead`), listed as `stage` and logged as hashing `what`;
    /// `ended` gets its state when it read the whole file unchanged
    /// (`laterMtime`: see `hashBlocks`), nil when it stopped short.
    func passAhead(_ path: String, _ file: LocalFile, blockSize: UInt32, _ stage: Preparation.Stage,
                   laterMtime: Bool, _ what: String, ended: @escaping (BlockHashing?) -> Void) {
        guard !stopped, copiesRunning == 0, hashingAhead == nil else { return }
        copiesRunning += 1
        hashingAhead = (path, Preparation(stage: stage, total: file.size, startedAt: loop.now), false)
        logger.debug("hashing \(what)")
        let root = self.root
        func run(_ state: BlockHashing) {
            runStep(state, {
                try Fetcher.hashBlocks(&$0, of: file, at: path, under: root, blockSize: blockSize, laterMtime: laterMtime)
            }) { [self] result in
                switch result {
                case .success((let state, true)) where !stopped && hashingAhead?.yielded == false:
                    hashingAhead?.preparation.done = state.done
                    return run(state)
                case .success((let state, true)):
                    state.close()
                    if !stopped { logger.debug("stopped hashing \(what): its copy slot is needed, or its result is not") }
                    ended(nil)
                case .success((let state, false)):
                    ended(state)
                case .failure(let error):
                    logger.debug("stopped hashing \(what): \(error)")
                    ended(nil)
                }
                hashingAhead = nil
                copiesRunning -= 1
                schedule()
            }
        }
        run(BlockHashing(total: file.size, remembered: nil))
    }

    /// Whether a pass over `held` that found `endMtime` at its end hashed
    /// `held`'s bytes: the same mtime, or a new one that the manifest lists
    /// for the same bytes (this node's own install of a touch elsewhere).
    /// Any other mtime may come with new bytes.
    static func keepsDigests(of held: LocalFile, endMtime: Int64?, manifestNow: LocalFile?) -> Bool {
        guard let endMtime else { return false }
        if endMtime == held.mtime { return true }
        guard let now = manifestNow else { return false }
        return now.hash == held.hash && now.size == held.size && now.inode == held.inode && now.mtime == endMtime
    }

    /// A transfer waits for the copy slot: a hash ahead of another file
    /// gives it up at its next step (one of the same file is what it waits for).
    func askHashAheadToYield(for transfer: Transfer) {
        if let ahead = hashingAhead, ahead.path != transfer.record.path { hashingAhead?.yielded = true }
    }

    /// The remembered digests of `held`'s blocks, in the size a fetch would use.
    func rememberedBlocks(of held: LocalFile) -> BlockDigests? {
        guard let blockSize = BlockDigests.blockSize(for: held.size) else { return nil }
        return blockMemory.digests(for: held.hash, blockSize: blockSize)
    }

    /// Sends `digests` with the transfer's requests, and works out the new
    /// version's as it is written (unless bytes were there before: a
    /// resumed file's first pieces are not seen).
    private func useBlocks(_ digests: BlockDigests, of held: LocalFile, for transfer: Transfer, _ how: String) {
        transfer.blocks = digests
        transfer.blockSource = held
        transfer.digestBuilder = transfer.received == 0 ? BlockDigestBuilder(held: digests, newSize: transfer.record.size) : nil
        logger.debug("fetching \(transfer.record.path) with the digests of \(digests.count) blocks of the version held here (\(how))")
    }

    /// The held file's blocks hashed so far.
    struct BlockHashing: PreparationState {
        var total: UInt64
        /// Digests of the held version known already: only its identity is checked.
        var remembered: BlockDigests?
        var source: FileDescriptor?
        var offset: UInt64 = 0
        var digests: [UInt8] = []
        /// The file's mtime at the end, when the loop checks it (`laterMtime`).
        var endMtime: Int64?
        var done: UInt64 { offset }
        func close() { try? source?.close() }
    }

    /// A write job stops taking pieces once the held bytes it copies reach
    /// this: a file whose blocks all match arrives as a burst of `.same`
    /// (or as one, from a holder that knows its digests), and one job
    /// copying gigabytes would hold a pool thread (shared with the raft
    /// log) for seconds. A multiple of every block size.
    static let maxHeldBytesPerWrite: UInt64 = 64 << 20

    /// Removes and returns the pieces the next write job takes from
    /// `pending`: received bytes freely, held copies and zeros (hashed
    /// there) up to `maxHeldBytesPerWrite`. A first such run longer than
    /// that is split: its rest stays first in `pending`.
    static func takeWritable(_ pending: inout [Piece]) -> [Piece] {
        var held: UInt64 = 0
        var count = 0
        for piece in pending {
            if case .bytes = piece {} else {
                // Copied from the held file, or zeros hashed: bounded per job.
                let length = piece.length
                if held > 0, held + length > maxHeldBytesPerWrite { break }
                if length > maxHeldBytesPerWrite {
                    var taken = Array(pending.prefix(count))
                    taken.append(piece.prefix(maxHeldBytesPerWrite))
                    pending.removeFirst(count)
                    pending[0] = piece.dropFirst(maxHeldBytesPerWrite)
                    return taken
                }
                held += length
            }
            count += 1
        }
        let taken = Array(pending.prefix(count))
        pending.removeFirst(count)
        return taken
    }

    /// Removes and returns the links' shares of the first `bytes` received
    /// bytes pending, in order (released once written).
    static func takeSources(_ sources: inout [(link: Link, bytes: Int)], bytes: Int) -> [(link: Link, bytes: Int)] {
        var taken: [(link: Link, bytes: Int)] = []
        var rest = bytes
        while rest > 0, !sources.isEmpty {
            let share = min(rest, sources[0].bytes)
            taken.append((sources[0].link, share))
            sources[0].bytes -= share
            if sources[0].bytes == 0 { sources.removeFirst() }
            rest -= share
        }
        return taken
    }

    /// The held file changed, went, or could not be read while its blocks
    /// were copied: the new version is fetched whole instead.
    struct HeldCopyError: Error, CustomStringConvertible {
        let path: String
        let underlying: Error
        var description: String { "cannot copy the unchanged blocks of \(path) from the version held here: \(underlying)" }
    }

    /// Writes `pieces` at their offsets, copying held ones from the file at
    /// `path` under `root` (which must still be `source`), and calls `each`
    /// with every run of bytes in order. Before each write call, `room` is
    /// told how many bytes it writes (holes left out: `ChunkWriter`) and
    /// throws if they do not fit. Thread pool.
    static func write(_ pieces: [Piece], to fd: FileDescriptor, heldAt root: String, _ path: String,
                      _ source: LocalFile?, room: (Int) throws -> Void = { _ in },
                      each: (ArraySlice<UInt8>) -> Void) throws {
        var received: [(offset: UInt64, bytes: ArraySlice<UInt8>)] = []
        var held: FileDescriptor?
        defer { try? held?.close() }
        for piece in pieces {
            switch piece {
            case let .bytes(offset, bytes):
                received.append((offset, bytes))
            case let .zeros(offset, length):
                received += Zeros.slices(from: offset, length: length)
            case let .held(offset, length):
                if !received.isEmpty {
                    try ChunkWriter.write(received, to: fd, room: room, each: each)
                    received.removeAll(keepingCapacity: true)
                }
                var at = offset
                while at < offset + length {
                    let chunk = try readHeld(&held, at: at, count: Int(min(UInt64(1 << 20), offset + length - at)),
                                             root: root, path, source)
                    try ChunkWriter.write([(at, chunk[...])], to: fd, room: room, each: each)
                    at += UInt64(chunk.count)
                }
            }
        }
        if !received.isEmpty { try ChunkWriter.write(received, to: fd, room: room, each: each) }
        if let held, let source {
            do { try checkUnchanged(held, path, source) } catch { throw HeldCopyError(path: path, underlying: error) }
        }
    }

    /// Up to `count` bytes of the held file at `at` (opened into `held` the
    /// first time, and checked to be `source`); throws `HeldCopyError`. Thread pool.
    private static func readHeld(_ held: inout FileDescriptor?, at: UInt64, count: Int, root: String, _ path: String,
                                 _ source: LocalFile?) throws -> [UInt8] {
        do {
            guard let source else {
                throw SystemError(errno: EINVAL, operation: "copy held bytes (none hashed)", path: path)
            }
            if held == nil {
                let opened = try FileSystem.openBeneath(root: root, path: path)
                held = opened
                try checkUnchanged(opened, path, source)
            }
            let chunk = try held!.read(upToCount: count, at: Int64(at))
            guard !chunk.isEmpty else {
                throw SystemError(errno: ESTALE, operation: "copy held bytes (shorter than it was)", path: path)
            }
            return chunk
        } catch {
            throw HeldCopyError(path: path, underlying: error)
        }
    }
}
