import Logging

/// The whole-tree scan: at start-up, when events were lost, and from time
/// to time for what inotify never reports. Loop thread only.
extension Node {
    /// Compares the whole tree with the manifest: what changed while the node
    /// was down (or while events were lost) is observed.
    func rescan(reason: String) {
        guard !sync.scanning else { return }
        sync.scanning = true
        let root = config.root
        let ignore = sync.ignore
        let manifest = reconciler.manifest
        logger.info("scanning \(root) (\(reason))")
        let started = loop.now
        sync.scanStartedAt = started
        sync.scanLoggedAt = started
        sync.scanProgress = NodeStatus.Scan(filesDone: 0, filesTotal: 0, bytesHashed: 0)
        let loop = self.loop
        loop.queueWork({ [weak self] () -> Result<(changed: [String], total: Int, skipped: [SkippedEntry],
                                                   moved: [(String, LocalFile)]), Error> in
            Result {
                let result = try DirectoryScanner.scan(root: root, ignore: ignore, progressInterval: 5_000) { entries, _ in
                    loop.execute { self?.sync.scanProgress?.filesDone = entries }
                }
                var changed: [String] = []
                var seen = PathSet()
                seen.reserveCapacity(result.entries.count)
                for entry in result.entries {
                    seen.insert(entry.path)
                    if let known = manifest[entry.path]?.local ?? nil, LocalDisk.unchanged(entry, known) { continue }
                    changed.append(entry.path)
                }
                // Unreadable directories hide their contents: not deletions.
                let hidden = result.skipped.compactMap { s -> String? in
                    if case .unreadable = s.reason { return s.path + "/" } else { return nil }
                }
                // Files gone from their names since the manifest was saved, by
                // inode: a new name with that very stat was renamed (while the
                // node was down) and keeps the hash, nothing is read again.
                var vanished: [UInt64: LocalFile] = [:]
                for (path, entry) in manifest where entry.local != nil && !seen.contains(path) {
                    if hidden.contains(where: { path.hasPrefix($0) }) { continue }
                    changed.append(path)
                    if let local = entry.local, local.kind == .file, local.inode != 0 { vanished[local.inode] = local }
                }
                var moved: [(String, LocalFile)] = []
                if !vanished.isEmpty {
                    for entry in result.entries where entry.kind == .file && (manifest[entry.path]?.local ?? nil) == nil {
                        if let local = vanished[entry.inode] { moved.append((entry.path, local)) }
                    }
                }
                return (changed, result.entries.count, result.skipped, moved)
            }
        }, completion: { [unowned self] result in
            sync.scanning = false
            switch result {
            case .failure(let error):
                recordError("cannot scan \(root): \(error)")
            case .success(let scan):
                for skipped in scan.skipped { logger.info("not syncing \(skipped)") }
                logger.info("scan done", metadata: ["entries": "\(scan.total)", "to look at": "\(scan.changed.count)",
                                                   "ms": "\(loop.now - started)"])
                sync.scanProgress = NodeStatus.Scan(filesDone: 0, filesTotal: scan.changed.count, bytesHashed: 0)
                sync.scanPending = PathSet(scan.changed)
                for (path, local) in scan.moved { sync.renameHints[path] = (local, loop.now) }
                if !scan.moved.isEmpty {
                    logger.info("scan: \(scan.moved.count) files under new names have the inode and stat of files gone from old ones (renamed): their hashes are kept unless they changed")
                }
                for path in scan.changed { observe(path) }
                scanStepDone(nil)
                perform(reconciler.reconcileAll(index: index))
                flushSoon()
            }
        })
    }

    /// Counts one path of the scan as looked at; logs progress now and then
    /// and once at the end.
    func scanStepDone(_ bytes: UInt64?) {
        guard var progress = sync.scanProgress else { return }
        if let bytes {
            progress.filesDone += 1
            progress.bytesHashed += bytes
        }
        sync.scanProgress = progress
        let now = loop.now
        if sync.scanPending.isEmpty {
            sync.scanProgress = nil
            if progress.filesTotal > 0 {
                logger.info("scan: \(progress.filesTotal) changed paths looked at, \(NodeStatus.bytes(progress.bytesHashed)) hashed in \(now - sync.scanStartedAt) ms")
            }
        } else if now - sync.scanLoggedAt >= 5_000 {
            sync.scanLoggedAt = now
            logger.info("scan: \(progress.filesDone)/\(progress.filesTotal) paths looked at, \(NodeStatus.bytes(progress.bytesHashed)) hashed")
        }
    }
}
