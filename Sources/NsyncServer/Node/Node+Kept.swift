#if canImport(Glibc)
import Glibc
#endif
import Logging

/// Directories deleted on another node that this node keeps, because all
/// they hold is what it does not sync: ignored files (a build folder in
/// `.nsyncignore`, an open editor's swap file), special files, names that
/// cannot be synced. Those are never removed, so the directory stays; the
/// node holds the deletion all the same (every node then holds it, the
/// tombstone goes and `nsyncd wait` settles) and does not announce the
/// directory again while it stays as it was. Synced entries made in it
/// are watched and announced as anywhere; the cluster then has it again.
/// Checked every `keptDirectoryCheck` (15 s): removed once it is empty.
extension Node {
    /// Started with the node: the directories kept before a restart.
    func loadKeptDirectories() {
        sync.keptDirectories = KeptDirectories.load(root: config.root)
        if !sync.keptDirectories.isEmpty { scheduleKeptDirectorySweep() }
    }

    /// What keeps `path`, when the failed install was the removal of a
    /// directory deleted at `version` that holds only what is not synced.
    func keepsOnlyUnsynced(_ path: String, _ version: UInt64) -> String? {
        guard let record = index.record(at: path), record.kind == .deleted, record.version == version else { return nil }
        return unsyncedContents(of: path)
    }

    /// Keeps `path`; false (nothing kept, the failure stands) if the list
    /// cannot be saved: a restart would then announce the directory again.
    func keepDirectory(_ path: String, holding unsynced: String) -> Bool {
        let full = config.root + "/" + path
        guard let status = try? FileSystem.status(full), status.kind == .directory,
              let birth = loop.birthTime(of: full) else { return false }
        sync.keptDirectories[path] = KeptDirectories.Identity(inode: status.inode, birth: birth)
        guard saveKeptDirectories() else {
            sync.keptDirectories[path] = nil
            return false
        }
        let message = "keeping \(path): deleted on another node, but it holds what this node does not sync "
            + "(\(unsynced)); those are left alone, and \(path) is removed here once they are gone"
        logger.notice("\(message)")
        scheduleKeptDirectorySweep()
        return true
    }

    /// The user removed or moved away `path` (or a directory above it):
    /// whatever appears there next is theirs, even on a reused inode.
    func forgetKeptDirectories(at path: String) {
        guard !sync.keptDirectories.isEmpty else { return }
        let prefix = path + "/"
        let gone = sync.keptDirectories.keys.filter { $0 == path || $0.hasPrefix(prefix) }
        guard !gone.isEmpty else { return }
        for kept in gone { sync.keptDirectories[kept] = nil }
        saveKeptDirectories()
    }

    /// Whether the kept `path`, found a directory of inode `inode` (nil: not
    /// a directory, or gone), is still kept. Not when it is gone or another
    /// one (a user's new directory of that name is announced), nor once the
    /// cluster has it or something in it again: then it is tracked as any path.
    func stillKept(_ path: String, directoryInode inode: UInt64?) -> Bool {
        guard let kept = sync.keptDirectories[path] else { return false }
        if inode == kept.inode,
           index.record(at: path)?.kind.isLive != true, !index.hasLiveEntries(under: path),
           loop.birthTime(of: config.root + "/" + path) == kept.birth {
            return true
        }
        sync.keptDirectories[path] = nil
        saveKeptDirectories()
        return false
    }

    @discardableResult
    private func saveKeptDirectories() -> Bool {
        do {
            try KeptDirectories.save(sync.keptDirectories, root: config.root)
            return true
        } catch {
            recordError("cannot save the list of kept directories: \(error)")
            return false
        }
    }

    private func scheduleKeptDirectorySweep() {
        guard sync.keptDirectorySweep == nil, !stopping else { return }
        sync.keptDirectorySweep = loop.schedule(after: config.tuning.keptDirectoryCheck) { [unowned self] in
            sync.keptDirectorySweep = nil
            sweepKeptDirectories()
        }
    }

    /// Removes kept directories that are empty now, and looks again at those
    /// no longer kept as they were.
    private func sweepKeptDirectories() {
        guard !stopping, stateDirectoryIsIntact() else { return }
        for path in sync.keptDirectories.keys {
            // A look under way would find it gone and take that for news.
            if sync.observing.contains(path) || sync.toObserve.contains(path) { continue }
            let full = config.root + "/" + path
            let status = (try? FileSystem.status(full)).flatMap { $0.kind == .directory ? $0 : nil }
            guard stillKept(path, directoryInode: status?.inode) else {
                observe(path)
                continue
            }
            // (Not through a read-only parent: such a directory stays.)
            guard FileSystem.nonDirectoryOnTheWay(root: config.root, path: path) == nil,
                  (try? FileSystem.removeDirectory(full)) != nil else { continue }
            logger.info("removed \(path): the files that kept it here are gone")
            sync.keptDirectories[path] = nil
            saveKeptDirectories()
        }
        if !sync.keptDirectories.isEmpty { scheduleKeptDirectorySweep() }
    }

    /// What a directory holds when all of it is what this node does not
    /// sync: ignored names, special files, names that are not UTF-8, and
    /// folders holding only those (deleted in the index, or kept too). Nil
    /// when it holds anything synced (its entries' removals still to come)
    /// or cannot be read.
    private func unsyncedContents(of path: String) -> String? {
        var ignored: [String] = [], special: [String] = [], seen = 0
        func collect(_ directory: String, depth: Int) -> Bool {
            guard depth < 64, let entries = try? FileSystem.listDirectoryEntries(config.root + "/" + directory) else { return false }
            for entry in entries {
                seen += 1
                guard seen <= 10_000 else { return false }
                guard let name = entry.name, IndexPath.violation(in: directory + "/" + name) == nil else {
                    special.append(directory + "/" + String(decoding: entry.rawName, as: UTF8.self))
                    continue
                }
                let child = directory + "/" + name
                switch entry.status?.kind {
                case .directory where sync.ignore.isIgnored(path: child, isDirectory: true)
                    || sync.keptDirectories[child] != nil:
                    ignored.append(child + "/")
                case .directory:
                    guard index.record(at: child)?.kind == .deleted, collect(child, depth: depth + 1) else { return false }
                case .other:
                    special.append(child)
                case .regular, .symlink:
                    guard sync.ignore.isIgnored(path: child, isDirectory: false) else { return false }
                    ignored.append(child)
                case nil:
                    return false
                }
            }
            return true
        }
        guard collect(path, depth: 0), !(ignored.isEmpty && special.isEmpty) else { return nil }
        func some(_ names: [String]) -> String {
            names.prefix(3).joined(separator: ", ") + (names.count > 3 ? " and \(names.count - 3) more" : "")
        }
        return [ignored.isEmpty ? nil : "ignored: " + some(ignored),
                special.isEmpty ? nil : "special files or names it cannot sync: " + some(special)]
            .compactMap { $0 }.joined(separator: "; ")
    }
}
