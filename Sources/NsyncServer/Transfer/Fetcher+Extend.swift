#if canImport(Glibc)
import Glibc
#endif

/// A new version that may extend the one this node holds (a log appended
/// to, a download that grew): the held bytes are copied into the `.part`
/// and hashed as received bytes are, and the first request asks for the
/// rest only, naming the SHA-256 of what was copied. A holder whose first
/// bytes differ answers `prefixDiffers`, and the transfer starts again from
/// 0. The index's SHA-256 checks the whole file at the end, as always.
/// Loop thread only, but for the copy on the thread pool.
extension Fetcher {
    /// Held files smaller than this are not worth the copy and the holder's
    /// check (a read of the prefix): fetched whole.
    static let extendMinimumSize: UInt64 = 1 << 20

    /// `record` is fetched whole from now on: a fetch that started from the
    /// held bytes gave up or ended with other bytes. Bounded.
    func noteNotExtending(_ record: FileRecord) {
        if notExtending.count >= 1_000 { notExtending.removeAll() }
        notExtending.insert(VersionKey(path: record.path, version: record.version))
    }

    /// Whether fetching `record` may start from `held`, what this node's
    /// disk has at the path: a file at least `extendMinimumSize` long and
    /// shorter than the new version.
    static func mayExtend(_ held: LocalFile, to record: FileRecord) -> Bool {
        held.kind == .file && record.kind == .file && held.size >= extendMinimumSize && held.size < record.size
    }

    /// Copies `held` into the transfer's `.part` on the pool; then the
    /// transfer waits for a holder again, from the copy's end, or from 0
    /// when the file changed since the manifest saw it.
    func copyHeldBytes(_ transfer: Transfer, _ held: LocalFile) {
        transfer.extending = nil
        transfer.writing = true
        transfer.copiedHeldBytes = true
        copiesRunning += 1
        let root = self.root
        let directory = temporaryDirectory
        let part = transfer.temporaryPath
        let hasher = transfer.hasher
        let record = transfer.record
        prepare(transfer, .copyingHeld, state: HeldCopy(total: held.size)) { state in
            if state.part == nil {
                try Fetcher.checkSpace(for: record, needing: record.size, in: directory)
                state.source = try FileSystem.openBeneath(root: root, path: record.path)
                try Fetcher.checkUnchanged(state.source!, record.path, held)
                state.part = try ChunkWriter.create(part, direct: false)
            }
            let (source, fd) = (state.source!, state.part!)
            let stepEnd = min(held.size, state.offset + Fetcher.preparationStep)
            do {
                while state.offset < stepEnd {
                    let chunk = try source.read(upToCount: Int(min(1 << 20, stepEnd - state.offset)), at: Int64(state.offset))
                    guard !chunk.isEmpty else {
                        throw SystemError(errno: ESTALE, operation: "copy (shorter than it was)", path: record.path)
                    }
                    // Holes stay holes, and each write asks for its room, as a download's do.
                    try ChunkWriter.write([(state.offset, chunk[...])], to: fd, room: {
                        try Fetcher.checkSpace(for: record, adding: UInt64($0), in: directory)
                    }) { hasher.update($0) }
                    state.offset += UInt64(chunk.count)
                }
            } catch {
                // The fetch goes on whole, and the copy's room is not its to count.
                try? fd.truncate(to: 0)
                throw error
            }
            guard state.offset >= held.size else { return true }
            try Fetcher.checkUnchanged(source, record.path, held)
            try? source.close()
            state.source = nil
            return false
        } finish: { [self] result in
            transfer.writing = false
            copiesRunning -= 1
            switch result {
            case .success(let state):
                transfer.fd = state.part
                transfer.received = held.size
                transfer.written = held.size
                transfer.presentAtStart = held.size
                bytesReused += held.size
                transfer.prefixDigest = transfer.hasher.digestSoFar()
                logger.debug("fetching \(record.path) from byte \(held.size): the version held here may be its start")
            case .failure(let error):
                transfer.hasher.reset()
                logger.debug("fetching \(record.path) whole: cannot start from the version held here: \(error)")
            }
            waiting.append(transfer)
            schedule()
        }
    }

    /// The held file copied into the `.part` so far.
    struct HeldCopy: PreparationState {
        var total: UInt64
        var source: FileDescriptor?
        var part: FileDescriptor?
        var offset: UInt64 = 0
        var done: UInt64 { offset }
        func close() {
            try? source?.close()
            try? part?.close()
        }
    }

    /// A holder's first bytes are not the ones copied: drop them.
    func startAgainFromZero(_ transfer: Transfer) {
        closeFile(transfer)
        transfer.received = 0
        transfer.written = 0
        transfer.presentAtStart = 0
        transfer.matchedBytes = 0
        transfer.prefixDigest = nil
        transfer.hasher.reset()
    }

    /// Throws unless `fd` still has the stat the manifest knew for `held`.
    static func checkUnchanged(_ fd: FileDescriptor, _ path: String, _ held: LocalFile) throws {
        let status = try FileSystem.status(descriptor: fd.rawValue, path: path)
        guard status.kind == .regular, UInt64(status.size) == held.size, status.modificationTime == held.mtime,
              status.inode == held.inode else {
            throw SystemError(errno: ESTALE, operation: "copy (changed since it was looked at)", path: path)
        }
    }
}
