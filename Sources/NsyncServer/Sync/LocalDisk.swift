#if canImport(Glibc)
import Glibc
#endif

/// The disk side of syncing, run on thread-pool threads: looking at a path
/// (stat, and hash only when the stat changed) and installing what the
/// reconciler decided, each install guarded by the state it expects. Pure
/// functions of their arguments plus the file system; any thread.
enum LocalDisk {
    /// What looking at one path found.
    enum Look {
        case found(LocalFile?)
        /// Written to while being hashed: look again once it settles.
        case changing
        /// Not something nsyncd syncs (a FIFO, a socket, a device).
        case skipped(String)
        case failed(String)
    }

    /// Stats `path` and hashes it if its stat differs from `known`.
    /// `beforeHashing` is told the file's stat and number of names (hard
    /// links) when its bytes must be hashed.
    /// `hint` is what the path held under its old name when it was renamed
    /// here: with the same stat (the same inode), its hash still holds.
    static func look(root: String, path: String, known: LocalFile?, hint: LocalFile? = nil,
                     beforeHashing: ((LocalFile, _ linkCount: UInt64) -> Void)? = nil) -> Look {
        let full = root + "/" + path
        // Below a symlink (or a file) there is nothing of the tree: what the
        // link points to is not synced, nor looked at.
        if FileSystem.nonDirectoryOnTheWay(root: root, path: path) != nil { return .found(nil) }
        let status: FileStatus
        do {
            status = try FileSystem.status(full)
        } catch let error as SystemError where error.isNotFound || error.isNotDirectory {
            return .found(nil)
        } catch {
            return .failed("\(error)")
        }
        switch status.kind {
        case .directory:
            return .found(LocalFile(kind: .directory, mode: status.mode, mtime: status.modificationTime, inode: status.inode))
        case .symlink:
            guard let target = try? FileSystem.readLink(full) else { return .found(nil) }
            return .found(LocalFile(kind: .symlink, mode: 0, mtime: status.modificationTime, target: target, inode: status.inode))
        case .other:
            return .skipped("not a regular file, directory or symlink")
        case .regular:
            var local = LocalFile(kind: .file, size: UInt64(status.size), mode: status.mode,
                                  mtime: status.modificationTime, inode: status.inode)
            for earlier in [known, hint] {
                if let earlier, earlier.kind == .file, !earlier.isRacy, local.sameStat(as: earlier) {
                    local.hash = earlier.hash
                    return .found(local)
                }
            }
            beforeHashing?(local, status.linkCount)
            do {
                let hashed = try FileSystem.hashStableFile(full, into: SHA256())
                guard hashed.isStable else { return .changing }
                // Moved away (its folder renamed) or replaced while it was
                // hashed: these bytes are no longer at `path`.
                do {
                    let now = try FileSystem.status(full)
                    guard now.kind == .regular, now.inode == hashed.after.inode else { return .changing }
                } catch let error as SystemError where error.isNotFound || error.isNotDirectory {
                    return .found(nil)
                }
                local.size = UInt64(hashed.after.size)
                local.mtime = hashed.after.modificationTime
                local.mode = hashed.after.syncedMode
                local.inode = hashed.after.inode
                local.hash = hashed.digest
                local.isRacy = FileSystem.mayChangeUnseen(modifiedAt: local.mtime)
                return .found(local)
            } catch let error as SystemError where error.isNotFound || error.isSymlink {
                return look(root: root, path: path, known: nil, beforeHashing: beforeHashing)
            } catch {
                return .failed("\(error)")
            }
        }
    }

    /// Whether a scanned entry matches what the manifest knows (no need to hash).
    static func unchanged(_ entry: ScannedEntry, _ known: LocalFile) -> Bool {
        switch entry.kind {
        case .file:
            known.kind == .file && !known.isRacy && UInt64(entry.size) == known.size && entry.mode == known.mode
                && entry.modificationTime == known.mtime
        case .directory:
            known.kind == .directory && entry.mode == known.mode
        case .symlink:
            known.kind == .symlink && entry.symlinkTarget == known.target && entry.modificationTime == known.mtime
        }
    }

    /// True when the disk at `full` is what the reconciler expects (nil: absent).
    static func matches(_ full: String, _ expected: LocalFile?) -> Bool {
        guard let status = try? FileSystem.status(full) else { return expected == nil }
        guard let expected else { return false }
        switch (status.kind, expected.kind) {
        case (.directory, .directory):
            return true
        case (.symlink, .symlink):
            // By stat too, as a file: a touch -h since the look is the user's.
            return status.modificationTime == expected.mtime && status.inode == expected.inode
                && (try? FileSystem.readLink(full)) == expected.target
        case (.regular, .file):
            guard UInt64(status.size) == expected.size, status.modificationTime == expected.mtime,
                  status.inode == expected.inode, status.syncedMode == expected.mode else { return false }
            // Written in the tick it was hashed in, perhaps again since: its
            // bytes say (racy hashes are of files read in a few milliseconds).
            guard expected.isRacy else { return true }
            guard let hashed = try? FileSystem.hashFile(full, into: SHA256()) else { return false }
            return hashed.isStable && hashed.digest == expected.hash
        default:
            return false
        }
    }

    // MARK: installing

    /// Where and how many of the files the index deletes are kept a while
    /// instead of unlinked (a rename elsewhere may want their bytes).
    struct Keep {
        var directory: String
        var capacity: Int
    }

    /// Carries out `items` in order; fetched files are made durable together
    /// first (one flush) and recorded in `journal` (see `InstallJournal`)
    /// before any is renamed into place, and every parent directory touched
    /// is fsync'd after.
    static func install(_ items: [InstallItem], root: String, node: NodeName, now: Int64,
                        journal: String? = nil, keep: Keep? = nil) -> [InstallResult] {
        let files = items.compactMap { item -> Fetcher.Fetched? in if case .file(let f) = item { f } else { nil } }
        if let journal {
            // Written before the flush so that one flush covers it with the
            // files (a single file syncs it itself). Best effort: without it
            // a crash in the next second is no worse than before it existed.
            // A move keeps its inode and takes the record's mode and mtime.
            let moves = items.compactMap { item -> InstallJournal.Entry? in
                guard case .move(let move) = item else { return nil }
                let inode: UInt64
                switch move.source {
                case .deleted(_, _, let expected): inode = expected.inode
                case .kept(_, let stamp): inode = stamp.inode
                }
                return InstallJournal.Entry(path: move.record.path, version: move.record.version, local: LocalFile(
                    kind: .file, size: move.record.size, mode: move.record.mode, mtime: move.record.mtime,
                    hash: move.record.hash, inode: inode))
            }
            try? InstallJournal.append(files.compactMap { fetched -> InstallJournal.Entry? in
                guard let status = try? FileSystem.status(fetched.temporaryPath) else { return nil }
                return InstallJournal.Entry(path: fetched.record.path, version: fetched.record.version, local: LocalFile(
                    kind: .file, size: UInt64(status.size), mode: status.mode, mtime: status.modificationTime,
                    hash: fetched.record.hash, inode: status.inode))
            } + moves, to: journal, sync: files.count <= 1)
        }
        var flushError: Error?
        do {
            if files.count == 1 {
                let fd = try FileDescriptor.open(files[0].temporaryPath, .readOnly)
                try fd.closeAfter { try fd.sync() }
            } else if files.count > 1 {
                try FileSystem.syncFileSystem(containing: root)
            }
        } catch {
            flushError = error
        }
        var touched = Set<String>()
        // Deletions deepest first, so a directory is empty by the time its turn comes.
        let ordered = items.filter { if case .remove = $0 { false } else { true } }
            + items.filter { if case .remove = $0 { true } else { false } }.sorted { $0.path.utf8.count > $1.path.utf8.count }
        var results: [InstallResult] = []
        results.reserveCapacity(items.count)
        var keep = keep
        for item in ordered {
            let full = root + "/" + item.path
            if let refusal = refusedThroughNonDirectory(item, root: root) {
                results += refusal
                continue
            }
            touched.insert(parent(of: full))
            switch item {
            case .file(let fetched):
                let record = fetched.record
                if let flushError {
                    results.append(.failed(path: record.path, version: record.version, .transient("flush failed: \(flushError)")))
                    continue
                }
                results.append(installFile(fetched, full: full, root: root))
            case let .directory(record, expected):
                results.append(installDirectory(record, expected: expected, full: full, root: root))
            case let .symlink(record, expected):
                results.append(installSymlink(record, expected: expected, full: full, root: root))
            case let .modificationTime(record, expected):
                results.append(setModificationTime(record, expected: expected, full: full, root: root))
            case let .remove(path, version, expected):
                results.append(remove(path, version: version, expected: expected, full: full, root: root, keep: &keep))
            case let .conflict(path, expected):
                results.append(conflictCopy(path, expected: expected, root: root, node: node, now: now))
            case .move(let move):
                if case .deleted(let from, _, _) = move.source { touched.insert(parent(of: root + "/" + from)) }
                results += self.move(move, root: root)
            }
        }
        OpenedDirectories.clear(root: root)
        // The renames are durable once their directories are: one flush of
        // the file system for a batch, a directory fsync or two otherwise.
        if touched.count > 2 {
            try? FileSystem.syncFileSystem(containing: root)
        } else {
            for directory in touched { try? FileDescriptor.syncDirectory(directory) }
        }
        return results
    }

    /// Nothing is installed, moved or removed through a symlink (or a file)
    /// a user put where the tree has a directory: it would reach outside
    /// PATH. Such an item fails as a local change; the look that follows
    /// finds the path absent, below that link.
    private static func refusedThroughNonDirectory(_ item: InstallItem, root: String) -> [InstallResult]? {
        var paths = [item.path]
        if case .move(let m) = item, case .deleted(let from, _, _) = m.source { paths.append(from) }
        guard paths.contains(where: { FileSystem.nonDirectoryOnTheWay(root: root, path: $0) != nil }) else { return nil }
        switch item {
        case .file(let f): return [.failed(path: f.record.path, version: f.record.version, .localChanged)]
        case .directory(let r, _), .symlink(let r, _), .modificationTime(let r, _):
            return [.failed(path: r.path, version: r.version, .localChanged)]
        case let .remove(path, version, _): return [.failed(path: path, version: version, .localChanged)]
        case let .conflict(path, _): return [.conflictFailed(path: path, "a directory on its way is not a directory any more")]
        case .move(let m):
            var results: [InstallResult] = []
            if case let .deleted(from, version, _) = m.source { results.append(.failed(path: from, version: version, .localChanged)) }
            return results + [.failed(path: m.record.path, version: m.record.version, .localChanged)]
        }
    }

    private static func parent(of full: String) -> String {
        guard let slash = full.lastIndex(of: "/") else { return "." }
        return String(full[..<slash])
    }

    /// Creates missing parent directories of `full` (below `root`), each
    /// level in its own (possibly read-only) parent. Never `root` itself:
    /// if PATH went away under the node, nothing is made in its place.
    private static func makeParents(of full: String, root: String) throws {
        let directory = parent(of: full)
        if (try? FileSystem.status(directory))?.kind == .directory { return }
        guard directory.utf8.count > root.utf8.count else {
            throw SystemError(errno: ENOENT, operation: "mkdir", path: directory)
        }
        try makeParents(of: directory, root: root)
        try inWritableDirectory(of: directory, root: root) { try FileSystem.makeDirectory(directory, mode: 0o755) }
    }

    /// Runs `body`, which adds, removes or renames an entry of `full`'s
    /// directory. A synced directory may be read-only (its mode is the
    /// cluster's: 0555, say), and a daemon that is not root cannot change
    /// what is in it. On EACCES the directory gets the owner's write and
    /// search bits for the call, then its mode back, as Syncthing does.
    /// (The Node does not announce that passing mode: see `Node.observe`.)
    static func inWritableDirectory<T>(of full: String, root: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as SystemError where error.errno == EACCES {
            // Only a synced directory (never PATH itself, nor above it).
            let directory = parent(of: full)
            guard directory.utf8.count > root.utf8.count + 1, directory.hasPrefix(root + "/"),
                  let status = try? FileSystem.status(directory), status.kind == .directory,
                  status.mode & 0o300 != 0o300 else { throw error }
            // Noted first, so that a node killed before the mode is back
            // puts it back when it starts, rather than announce the passing
            // mode as the user's. Not flushed: a killed process's writes
            // outlive it. Unnoted, it is not opened.
            guard (try? OpenedDirectories.note(directory, mode: status.mode, root: root)) != nil,
                  (try? FileSystem.setMode(directory, status.mode | 0o300)) != nil else { throw error }
            defer { try? FileSystem.setMode(directory, status.mode) }
            return try body()
        }
    }

    private static func installFile(_ fetched: Fetcher.Fetched, full: String, root: String) -> InstallResult {
        let record = fetched.record
        guard matches(full, fetched.expected) else {
            return .failed(path: record.path, version: record.version, .localChanged)
        }
        do {
            // Stat'ed before the rename, which keeps it: a program that
            // writes the file the moment it appears must not have its bytes
            // taken for the fetched ones (same stat, the hash not read again).
            let status = try FileSystem.status(fetched.temporaryPath)
            try makeParents(of: full, root: root)
            try inWritableDirectory(of: full, root: root) {
                if let status = try? FileSystem.status(full), status.kind == .directory {
                    try FileSystem.removeDirectory(full)
                }
                try FileSystem.rename(fetched.temporaryPath, to: full)
            }
            return .installed(path: record.path, version: record.version, local: LocalFile(
                kind: .file, size: UInt64(status.size), mode: status.mode, mtime: status.modificationTime,
                hash: record.hash, inode: status.inode))
        } catch {
            return .failed(path: record.path, version: record.version, .transient("\(error)"))
        }
    }

    private static func installDirectory(_ record: FileRecord, expected: LocalFile?, full: String, root: String) -> InstallResult {
        guard matches(full, expected) else { return .failed(path: record.path, version: record.version, .localChanged) }
        do {
            let status = try? FileSystem.status(full)
            if let status, status.kind != .directory {
                try inWritableDirectory(of: full, root: root) { try FileSystem.removeFile(full) }
            }
            if status?.kind != .directory {
                try makeParents(of: full, root: root)
                try inWritableDirectory(of: full, root: root) { try FileSystem.makeDirectory(full, mode: record.modeToInstall) }
            }
            // A directory's setgid bit (set here for its group, or given by
            // a setgid parent at mkdir) is local, as its owner is: kept.
            let made = try FileSystem.status(full)
            guard made.kind == .directory else { throw SystemError.notDirectory("install", path: full) }
            let local = made.localModeBits
            try FileSystem.setMode(full, record.modeToInstall | local)
            try? FileSystem.setModificationTime(full, record.mtime)
            let after = try FileSystem.status(full)
            guard after.kind == .directory, after.inode == made.inode, after.syncedMode == record.modeToInstall else {
                // Changed by someone else since the chmod: that is what the
                // directory is now, to be looked at, not held as the record.
                return .failed(path: record.path, version: record.version, .localChanged)
            }
            return .installed(path: record.path, version: record.version,
                              local: LocalFile(kind: .directory, mode: after.mode, mtime: after.modificationTime, inode: after.inode))
        } catch {
            return .failed(path: record.path, version: record.version, .transient("\(error)"))
        }
    }

    private static func installSymlink(_ record: FileRecord, expected: LocalFile?, full: String, root: String) -> InstallResult {
        guard matches(full, expected) else { return .failed(path: record.path, version: record.version, .localChanged) }
        let temporary = root + "/.nsync/tmp/link-\(record.version)-\(UInt32.random(in: 0...UInt32.max))"
        do {
            try makeParents(of: full, root: root)
            try FileSystem.createSymlink(at: temporary, target: record.target)
            try? FileSystem.setModificationTime(temporary, record.mtime, noFollow: true)
            let after = try FileSystem.status(temporary)  // before the rename, as a file's
            try inWritableDirectory(of: full, root: root) {
                if let status = try? FileSystem.status(full), status.kind == .directory {
                    try FileSystem.removeDirectory(full)
                }
                try FileSystem.rename(temporary, to: full)
            }
            return .installed(path: record.path, version: record.version, local: LocalFile(
                kind: .symlink, mode: 0, mtime: after.modificationTime, target: record.target, inode: after.inode))
        } catch {
            _ = try? FileDescriptor.removeIfPresent(temporary)
            return .failed(path: record.path, version: record.version, .transient("\(error)"))
        }
    }

    /// Gives a file that has the record's bytes the record's mode and mtime,
    /// in place; a file with other hard links (whose mode and mtime would
    /// change too) is replaced by a copy of itself instead. A symlink with
    /// the record's target gets its mtime, the link itself (never followed).
    private static func setModificationTime(_ record: FileRecord, expected: LocalFile, full: String,
                                            root: String) -> InstallResult {
        guard matches(full, expected) else { return .failed(path: record.path, version: record.version, .localChanged) }
        if expected.kind == .symlink {
            if let status = try? FileSystem.status(full), status.linkCount > 1 {
                // A hard link to a symlink (cp -a keeps them): its other names
                // would take the time too. A link of its own instead.
                return installSymlink(record, expected: expected, full: full, root: root)
            }
            // As when a link is made: a link whose time cannot be set (not
            // ours, a file system without link times) keeps its own, and the
            // node holds it rather than retrying for ever.
            try? FileSystem.setModificationTime(full, record.mtime, noFollow: true)
            guard let after = try? FileSystem.status(full), after.kind == .symlink else {
                return .failed(path: record.path, version: record.version, .localChanged)
            }
            return .installed(path: record.path, version: record.version, local: LocalFile(
                kind: .symlink, mode: 0, mtime: after.modificationTime, target: expected.target, inode: after.inode))
        }
        do {
            var inode = expected.inode
            if let status = try? FileSystem.status(full), status.linkCount > 1 {
                let copy = root + "/.nsync/tmp/meta-\(expected.inode)-\(record.version)-\(UInt32.random(in: 0...UInt32.max))"
                if let failure = copyVerified(root: root, from: record.path, to: copy, record: record) {
                    return .failed(path: record.path, version: record.version, .transient(failure))
                }
                do {
                    inode = try FileSystem.status(copy).inode
                    try inWritableDirectory(of: full, root: root) { try FileSystem.rename(copy, to: full) }
                } catch {
                    _ = try? FileDescriptor.removeIfPresent(copy)
                    throw error
                }
            }
            // A file's setuid and setgid bits go with any change from
            // elsewhere, as with a copy (a directory's setgid bit stays:
            // `installDirectory`).
            let started = FileSystem.coarseNow()
            if (try FileSystem.status(full)).mode != record.modeToInstall {
                try FileSystem.setMode(full, record.modeToInstall)
            }
            try FileSystem.setModificationTime(full, record.mtime)
            let after = try FileSystem.status(full)
            guard after.kind == .regular, after.inode == inode, UInt64(after.size) == expected.size,
                  after.syncedMode == record.modeToInstall,
                  isSet(after.modificationTime, to: record.mtime, window: writeWindow(since: started)) else {
                // Written (or replaced) since the check: those are not the
                // record's bytes under its time, but a change to look at.
                return .failed(path: record.path, version: record.version, .localChanged)
            }
            return .installed(path: record.path, version: record.version, local: LocalFile(
                kind: .file, size: UInt64(after.size), mode: after.mode, mtime: after.modificationTime,
                hash: expected.hash, inode: after.inode))
        } catch {
            return .failed(path: record.path, version: record.version, .transient("\(error)"))
        }
    }

    /// Whether a file's mtime `found`, read after setting it to `mtime`
    /// while the coarse clock went through `window`, is that one. A write
    /// since then stamps the clock's time, within the window; any other
    /// value is how the file system stored `mtime`: rounded to its step,
    /// or clamped to its range (ext4 keeps 1901-2446, FAT 1980-2107), the
    /// same on every try, so it is held rather than set again for ever.
    static func isSet(_ found: Int64, to mtime: Int64, window: ClosedRange<Int64>) -> Bool {
        found == mtime || !window.contains(found)
    }

    /// The coarse clock's times a write stamps between `start` and now
    /// (a fine-grained stamp is up to a tick past the coarse clock).
    static func writeWindow(since start: Int64) -> ClosedRange<Int64> {
        (start &- FileSystem.coarseTick)...(FileSystem.coarseNow() &+ 2 * FileSystem.coarseTick)
    }

    private static func remove(_ path: String, version: UInt64, expected: LocalFile, full: String, root: String) -> InstallResult {
        var keep: Keep?
        return remove(path, version: version, expected: expected, full: full, root: root, keep: &keep)
    }

    private static func remove(_ path: String, version: UInt64, expected: LocalFile, full: String, root: String,
                               keep: inout Keep?) -> InstallResult {
        guard matches(full, expected) else { return .failed(path: path, version: version, .localChanged) }
        // Not a file with other names (hard links): a move from it would
        // change their mode and mtime too.
        if let directory = keep?.directory, keep?.capacity ?? 0 > 0, expected.kind == .file, expected.size > 0,
           (try? FileSystem.status(full))?.linkCount == 1,
           let kept = freeName(in: directory, "kept-\(expected.inode)-\(version)"),
           (try? inWritableDirectory(of: full, root: root, { try FileSystem.rename(full, to: kept) })) != nil {
            keep?.capacity -= 1
            // Still the file the manifest knew (a write between the check
            // above and the rename would show here): else not worth keeping.
            if matches(kept, expected), let stamp = try? FileSystem.status(kept) {
                return .kept(path: path, version: version, at: kept, content: expected, stamp: stamp)
            }
            _ = try? FileDescriptor.removeIfPresent(kept)
            return .installed(path: path, version: version, local: nil)
        }
        do {
            try inWritableDirectory(of: full, root: root) {
                if expected.kind == .directory {
                    try FileSystem.removeDirectory(full)
                } else {
                    try FileSystem.removeFile(full)
                }
            }
            return .installed(path: path, version: version, local: nil)
        } catch let error as SystemError where error.isNotFound {
            return .installed(path: path, version: version, local: nil)
        } catch {
            return .failed(path: path, version: version, .transient("\(error)"))
        }
    }

    /// Installs a record from bytes this node has already: a file the index
    /// deletes in the same batch (renamed to the record's path), or one it
    /// deleted a moment ago and kept. Mode and mtime are set on the way,
    /// under `.nsync/tmp`. For a deleted path: two results, the deletion's
    /// then the record's; for a kept file, the record's. The file was
    /// installed or hashed here and still has the stat it had then, so its
    /// bytes are the record's without reading them again. If it changed
    /// since, it stays (the reconciler looks at it again) and the record
    /// fails as transient, to be fetched from a holder.
    private static func move(_ m: LocalMove, root: String) -> [InstallResult] {
        let to = root + "/" + m.record.path
        let record = m.record
        var done: [InstallResult] = []
        let staging: String
        switch m.source {
        case let .deleted(path, version, expected):
            let from = root + "/" + path
            guard matches(from, expected) else {
                return [.failed(path: path, version: version, .localChanged),
                        .failed(path: record.path, version: record.version, .transient("\(path), to be moved here, changed"))]
            }
            guard matches(to, m.expected), (try? FileSystem.status(from))?.linkCount == 1,
                  let name = freeName(in: root + "/.nsync/tmp", "move-\(expected.inode)-\(record.version)") else {
                // Something the user put at the new name, or an old name with
                // other hard links (whose mode and mtime the move would change).
                return [remove(path, version: version, expected: expected, full: from, root: root),
                        matches(to, m.expected) ? .failed(path: record.path, version: record.version, .transient("\(path) has other names: fetching it"))
                            : .failed(path: record.path, version: record.version, .localChanged)]
            }
            staging = name
            do {
                try inWritableDirectory(of: from, root: root) { try FileSystem.rename(from, to: staging) }
            } catch {
                return [.failed(path: path, version: version, .transient("\(error)")),
                        .failed(path: record.path, version: record.version, .transient("cannot move \(path) here: \(error)"))]
            }
            // The deletion is done: whatever follows, the old name is gone.
            done.append(.installed(path: path, version: version, local: nil))
        case let .kept(path, stamp):
            // Nothing wrote to it since it was kept (ctime moves on any write
            // and cannot be set back), so its bytes are still the record's.
            guard let status = try? FileSystem.status(path), status.kind == .regular, status.hasSameContentStamp(as: stamp),
                  UInt64(status.size) == record.size, status.linkCount == 1 else {
                _ = try? FileDescriptor.removeIfPresent(path)
                return [.failed(path: record.path, version: record.version, .transient("its kept copy changed or is gone"))]
            }
            guard matches(to, m.expected) else {
                _ = try? FileDescriptor.removeIfPresent(path)
                return [.failed(path: record.path, version: record.version, .localChanged)]
            }
            staging = path
        }
        do {
            try FileSystem.setMode(staging, record.modeToInstall)
            try FileSystem.setModificationTime(staging, record.mtime)
            let status = try FileSystem.status(staging)  // before the rename, as a fetched file's
            try makeParents(of: to, root: root)
            try inWritableDirectory(of: to, root: root) {
                if let status = try? FileSystem.status(to), status.kind == .directory {
                    try FileSystem.removeDirectory(to)
                }
                try FileSystem.rename(staging, to: to)
            }
            return done + [.installed(path: record.path, version: record.version, local: LocalFile(
                kind: .file, size: UInt64(status.size), mode: status.mode, mtime: status.modificationTime,
                hash: record.hash, inode: status.inode))]
        } catch {
            // The bytes stay kept for a later try (of a deleted path), or go.
            if case let .deleted(path, version, expected) = m.source, let stamp = try? FileSystem.status(staging) {
                done = [.kept(path: path, version: version, at: staging, content: expected, stamp: stamp)]
            } else {
                _ = try? FileDescriptor.removeIfPresent(staging)
            }
            return done + [.failed(path: record.path, version: record.version, .transient("\(error)"))]
        }
    }

    /// `directory/prefix-N` for a random N that no file has yet (the install
    /// job is the only one naming files so: it cannot be taken meanwhile).
    private static func freeName(in directory: String, _ prefix: String) -> String? {
        for _ in 0..<8 {
            let name = directory + "/" + prefix + "-\(UInt32.random(in: 0...UInt32.max))"
            if !FileDescriptor.exists(name) { return name }
        }
        return nil
    }

    /// Copies `source` (relative to `root`: a file this node holds, its
    /// manifest says with `record`'s bytes) to `temporary`, hashing what it
    /// reads; the copy stands only if that is the record's SHA-256 (the
    /// source may have changed since). Mode and mtime are the record's.
    /// Holes stay holes (`ChunkWriter`), and like a fetch it needs what the
    /// source takes on disk free beside the raft log's reserve, then asks
    /// for the room of each write. Returns why not, or nil. Thread pool.
    static func copyVerified(root: String, from source: String, to temporary: String, record: FileRecord) -> String? {
        do {
            let input = try FileSystem.openBeneath(root: root, path: source)
            return try input.closeAfter { () -> String? in
                let status = try FileSystem.status(descriptor: input.rawValue, path: source)
                guard status.kind == .regular, UInt64(status.size) == record.size else {
                    return "\(source) is not a file of \(record.size) bytes any more"
                }
                let allocated = (try? FileSystem.allocatedBytes(descriptor: input.rawValue)) ?? record.size
                // The disk the copy is written to, as a fetch checks it.
                let directory = temporary.lastIndex(of: "/").map { String(temporary[..<$0]) } ?? root
                try Fetcher.checkSpace(for: record, needing: min(record.size, allocated), in: directory)
                let output = try FileDescriptor.open(temporary, .writeOnly, options: [.create, .exclusive], permissions: 0o600)
                let hasher = SHA256()
                let matched = try output.closeAfter { () -> Bool in
                    var offset: Int64 = 0
                    while offset < Int64(record.size) {
                        let chunk = try input.read(upToCount: Int(min(Int64(1 << 20), Int64(record.size) - offset)), at: offset)
                        guard !chunk.isEmpty else { break }
                        hasher.update(chunk)
                        try ChunkWriter.write([(UInt64(offset), chunk[...])], to: output, room: {
                            try Fetcher.checkSpace(for: record, adding: UInt64($0), in: directory)
                        }) { _ in }
                        offset += Int64(chunk.count)
                    }
                    guard offset == Int64(record.size), hasher.finalize() == record.hash else { return false }
                    try FileSystem.setMode(descriptor: output.rawValue, record.modeToInstall)
                    try FileSystem.setModificationTime(descriptor: output.rawValue, record.mtime)
                    return true
                }
                if !matched {
                    _ = try? FileDescriptor.removeIfPresent(temporary)
                    return "\(source) no longer has the bytes"
                }
                return nil
            }
        } catch {
            _ = try? FileDescriptor.removeIfPresent(temporary)
            return "\(error)"
        }
    }

    private static func conflictCopy(_ path: String, expected: LocalFile, root: String, node: NodeName, now: Int64) -> InstallResult {
        let full = root + "/" + path
        guard matches(full, expected) else { return .conflictChangedAgain(path: path) }
        var copy = ConflictName.conflictCopyName(for: path, secondsSinceEpoch: now, node: node)
        var attempt = 1
        while (try? FileSystem.status(root + "/" + copy)) != nil, attempt < 100 {
            attempt += 1
            copy = ConflictName.conflictCopyName(for: path, secondsSinceEpoch: now + Int64(attempt), node: node)
        }
        do {
            try inWritableDirectory(of: full, root: root) { try FileSystem.rename(full, to: root + "/" + copy) }
            var local = expected
            if let status = try? FileSystem.status(root + "/" + copy) {
                local.inode = status.inode
                local.mtime = status.modificationTime
            }
            return .conflictCopied(path: path, copy: copy, local: local)
        } catch {
            return .conflictFailed(path: path, "\(error)")
        }
    }
}
