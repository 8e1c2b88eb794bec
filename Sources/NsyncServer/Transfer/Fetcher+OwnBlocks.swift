/// The blocks of a new version made here, hashed for the nodes that will
/// fetch it by blocks (a file edited in place): while this node hashes the
/// file to announce it, a second pass hashes its blocks in the size those
/// fetches ask in, and the digests are remembered under the SHA-256 the
/// announcing look finds. Serving those fetches (`TransferServer.knownBlocks`),
/// this node then compares digests and reads only the blocks that differ,
/// instead of reading and hashing the whole file once per fetcher after
/// the announcement. Loop thread only, but for the pass's steps.
extension Fetcher {
    /// New versions whose pass ended and whose SHA-256 is not known yet
    /// (a look that found the file changing finds none) are kept up to
    /// this many; the oldest goes first.
    static let maxOwnPasses = 8

    /// A new version made here whose blocks are (being) hashed, and what
    /// is known of it so far.
    struct OwnPass {
        let file: LocalFile
        let blockSize: UInt32
        let startedAt: UInt64
        /// Once the pass read the whole file unchanged.
        var digests: BlockDigests?
        /// Once the look announcing it found it.
        var hash: [UInt8]?

        func isOf(_ other: LocalFile) -> Bool {
            other.kind == .file && other.size == file.size && other.mtime == file.mtime && other.inode == file.inode
        }
    }

    /// This node is about to hash its new version of `path` (`file`, whose
    /// hash is not known yet) to announce it, and the other nodes' fetches
    /// of it will send the digests of their version's blocks, in blocks of
    /// `blockSize`: hashes the new version's blocks now, beside the
    /// announcement's hashing (on separate hosts the two passes overlap;
    /// the fetches then find no pass over the whole file ahead of them).
    /// Like `hashAhead`: one pass at a time, giving up the copy slot to a
    /// fetch of another file. The same file offered again (looked at again)
    /// keeps its pass.
    func hashOwnBlocks(_ path: String, _ file: LocalFile, blockSize: UInt32) {
        if let pass = ownPasses[path], pass.isOf(file), pass.blockSize == blockSize { return }
        guard !stopped, copiesRunning == 0, hashingAhead == nil else { return }
        if ownPasses.count >= Fetcher.maxOwnPasses,
           let oldest = ownPasses.min(by: { $0.value.startedAt < $1.value.startedAt })?.key {
            ownPasses[oldest] = nil
        }
        ownPasses[path] = OwnPass(file: file, blockSize: blockSize, startedAt: loop.now)
        passAhead(path, file, blockSize: blockSize, .hashingOwnBlocks, laterMtime: false,
                  "the blocks of \(path) for the fetches of the new version made here") { [self] state in
            defer { hooks.ownBlocksSettled() }
            guard ownPasses[path]?.isOf(file) == true, ownPasses[path]?.digests == nil else { return }
            guard let state else {
                ownPasses[path] = nil
                return
            }
            ownPasses[path]?.digests = BlockDigests(blockSize: blockSize, digests: state.digests)
            rememberOwnBlocks(path)
        }
    }

    /// The look that announces `path` hashed `local`: if `hashOwnBlocks`
    /// hashes (or hashed) the blocks of that very file, they are
    /// remembered under its SHA-256; of another file, they are dropped
    /// (and a pass still running over it stops).
    func ownVersionHashed(_ path: String, _ local: LocalFile) {
        guard let pass = ownPasses[path] else { return }
        guard pass.isOf(local), local.hash.count == SHA256.digestLength else {
            ownPasses[path] = nil
            if pass.digests == nil, hashingAhead?.path == path { hashingAhead?.yielded = true }
            return
        }
        ownPasses[path]?.hash = local.hash
        rememberOwnBlocks(path)
    }

    /// Whether the blocks of the version with SHA-256 `hash`, made here,
    /// are being hashed now in blocks of `blockSize`.
    func ownBlocksPending(for hash: [UInt8], blockSize: UInt32) -> Bool {
        ownPasses.values.contains { $0.digests == nil && $0.hash == hash && $0.blockSize == blockSize }
    }

    private func rememberOwnBlocks(_ path: String) {
        guard let pass = ownPasses[path], let digests = pass.digests, let hash = pass.hash else { return }
        ownPasses[path] = nil
        blockMemory.remember(digests, for: hash)
        logger.debug("hashed the blocks of \(path) for the fetches of its new version")
    }
}
