/// One file, directory or symlink found by a scan, relative to PATH.
/// Immutable value, handed from the thread pool to the loop thread.
public struct ScannedEntry: Equatable, Sendable {
    public enum Kind: Equatable, Sendable { case file, directory, symlink }

    /// Relative to PATH, `/`-separated, no leading `/`.
    public var path: String
    public var kind: Kind
    /// Bytes for files; 0 for directories; the target's length for symlinks.
    public var size: Int64
    /// The permission bits that sync (`& FileRecord.syncedModeBits`).
    public var mode: UInt32
    /// Nanoseconds since the Unix epoch.
    public var modificationTime: Int64
    /// The link text for symlinks (never followed), nil otherwise.
    public var symlinkTarget: String?
    /// Inode number (0 when not known).
    public var inode: UInt64

    public init(path: String, kind: Kind, size: Int64, mode: UInt32, modificationTime: Int64,
                symlinkTarget: String? = nil, inode: UInt64 = 0) {
        self.path = path
        self.kind = kind
        self.size = size
        self.mode = mode & FileRecord.syncedModeBits
        self.modificationTime = modificationTime
        self.symlinkTarget = symlinkTarget
        self.inode = inode
    }
}

/// Something a scan saw and will not sync, with the reason, for the log and
/// `nsyncd status`. Immutable value.
public struct SkippedEntry: Hashable, Sendable, CustomStringConvertible {
    public enum Reason: Hashable, Sendable {
        /// FIFO, socket or device node: only files, directories and symlinks sync.
        case specialFile
        /// The name is not valid UTF-8, so it cannot be an index key on every node.
        case invalidName
        /// A directory that could not be listed (usually permissions); its
        /// contents are neither synced nor deleted elsewhere.
        case unreadable(SystemError)
    }

    /// Relative path; invalid UTF-8 bytes shown as U+FFFD.
    public var path: String
    public var reason: Reason

    public var description: String {
        switch reason {
        case .specialFile: return "\(path): skipped, not a regular file, directory or symlink"
        case .invalidName: return "\(path): skipped, the name is not valid UTF-8; rename it to sync it"
        case .unreadable(let error): return "\(path): skipped, cannot read it (\(error)); fix its permissions to sync it"
        }
    }
}

/// What a scan of PATH found. Immutable value.
public struct ScanResult: Sendable {
    /// Sorted by the UTF-8 bytes of `path`, so two scans (or a scan and the
    /// index) can be compared with one merge pass.
    public var entries: [ScannedEntry]
    public var skipped: [SkippedEntry]
}

/// Walks PATH once and reports every file, directory and symlink that is
/// not ignored, with its metadata (no hashing: the caller hashes only what
/// differs from the index). Stateless; runs on a thread-pool thread and
/// blocks while it reads the disk.
///
/// Never follows symlinks, never descends into ignored directories (and so
/// never into `.nsync`). Entries that vanish while the scan runs are left
/// out silently: the watcher reports their removal.
public enum DirectoryScanner {
    /// Called every `progressInterval` entries with (entries so far, bytes of
    /// files so far), on the scanning thread.
    public typealias Progress = (_ entries: Int, _ bytes: Int64) -> Void

    /// Scans `root`. Throws only when `root` itself cannot be listed; every
    /// other problem becomes a `SkippedEntry`.
    public static func scan(root: String, ignore: IgnoreRules, progressInterval: Int = 10_000,
                            progress: Progress? = nil) throws -> ScanResult {
        var walk = Walk(root: root, ignore: ignore, progressInterval: max(1, progressInterval), progress: progress)
        let top = try FileSystem.statusFollowingLinks(walk.root)
        guard top.kind == .directory else { throw SystemError.notDirectory("scan", path: walk.root) }
        let topEntries = try FileSystem.listDirectoryEntries(walk.root, followLinks: true)
        walk.visit(entries: topEntries, relativeDirectory: "")
        walk.entries.sort { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        return ScanResult(entries: walk.entries, skipped: walk.skipped)
    }

    /// Scans the directory `subtree` (relative, not empty) of `root`: what
    /// is below it, with paths relative to `root`, so that ignore rules
    /// anchored at `root` (`/build/`) match as in a whole scan. Throws when
    /// `subtree` is not a directory (never followed) or cannot be listed.
    public static func scan(root: String, subtree: String, ignore: IgnoreRules) throws -> ScanResult {
        var walk = Walk(root: root, ignore: ignore, progressInterval: .max, progress: nil)
        let top = try FileSystem.listDirectoryEntries(walk.root + "/" + subtree)
        walk.visit(entries: top, relativeDirectory: subtree)
        walk.entries.sort { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        return ScanResult(entries: walk.entries, skipped: walk.skipped)
    }

    /// The mutable state of one scan; local to the scanning thread.
    private struct Walk {
        let root: String
        let ignore: IgnoreRules
        let progressInterval: Int
        let progress: Progress?
        var entries: [ScannedEntry] = []
        var skipped: [SkippedEntry] = []
        var bytes: Int64 = 0

        init(root: String, ignore: IgnoreRules, progressInterval: Int, progress: Progress?) {
            self.progressInterval = progressInterval
            self.root = root.hasSuffix("/") && root.count > 1 ? String(root.dropLast()) : root
            self.ignore = ignore
            self.progress = progress
        }

        /// Depth-first with an explicit stack of pending directories, so a
        /// deep tree cannot overflow the thread-pool thread's stack.
        mutating func visit(entries top: [DirectoryEntry], relativeDirectory: String) {
            var pending: [(relative: String, entries: [DirectoryEntry])] = [(relativeDirectory, top)]
            while let (directory, listing) = pending.popLast() {
                for entry in listing {
                    guard let name = entry.name else {
                        // Ignore rules match its display name, as in the watcher.
                        let path = join(directory, entry.displayName)
                        if !ignore.isIgnoredEntry(path: path, isDirectory: entry.status?.kind == .directory) {
                            skipped.append(SkippedEntry(path: path, reason: .invalidName))
                        }
                        continue
                    }
                    let path = join(directory, name)
                    guard let status = entry.status else {
                        if let error = entry.statusError, !error.isNotFound {
                            skipped.append(SkippedEntry(path: path, reason: .unreadable(error)))
                        }
                        continue
                    }
                    let isDirectory = status.kind == .directory
                    if ignore.isIgnoredEntry(path: path, isDirectory: isDirectory) { continue }
                    switch status.kind {
                    case .regular:
                        bytes += status.size
                        record(ScannedEntry(path: path, kind: .file, size: status.size, mode: status.mode,
                                            modificationTime: status.modificationTime, inode: status.inode))
                    case .symlink:
                        do {
                            let target = try FileSystem.readLink(root + "/" + path)
                            record(ScannedEntry(path: path, kind: .symlink, size: Int64(target.utf8.count),
                                                mode: status.mode, modificationTime: status.modificationTime,
                                                symlinkTarget: target))
                        } catch let error as SystemError {
                            if !error.isNotFound { skipped.append(SkippedEntry(path: path, reason: .unreadable(error))) }
                        } catch {}
                    case .directory:
                        do {
                            let children = try FileSystem.listDirectoryEntries(root + "/" + path)
                            record(ScannedEntry(path: path, kind: .directory, size: 0, mode: status.mode,
                                                modificationTime: status.modificationTime))
                            pending.append((path, children))
                        } catch let error as SystemError {
                            // ENOENT: removed meanwhile. ELOOP/ENOTDIR: swapped for
                            // something else; the watcher will report what it is now.
                            if !(error.isNotFound || error.isSymlink || error.isNotDirectory) {
                                skipped.append(SkippedEntry(path: path, reason: .unreadable(error)))
                            }
                        } catch {}
                    case .other:
                        skipped.append(SkippedEntry(path: path, reason: .specialFile))
                    }
                }
            }
        }

        private mutating func record(_ entry: ScannedEntry) {
            entries.append(entry)
            if let progress, entries.count % progressInterval == 0 {
                progress(entries.count, bytes)
            }
        }

        private func join(_ directory: String, _ name: String) -> String {
            directory.isEmpty ? name : directory + "/" + name
        }
    }
}
