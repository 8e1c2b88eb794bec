@testable import NsyncServer

/// The simulated node carrying out the reconciler's actions on its fake
/// disk, and reporting each outcome back as a later event. Test only.
extension ReconcilerSimulation {

    /// What the node tells the reconciler once an action's disk work is
    /// done: delivered as its own later event, like a thread-pool completion
    /// reaching the loop (watcher events and log entries may come first).
    enum Report {
        case installed(path: String, version: UInt64, local: LocalFile?)
        case installFailed(path: String, version: UInt64, InstallFailure)
        case conflictCopied(path: String, copy: String, local: LocalFile)
        case conflictCopyFailed(path: String)
        case observed(path: String)
    }

    mutating func report(_ n: Int, _ report: Report) {
        pending.append(.report(node: n, report, incarnation: nodes[n].incarnation))
    }

    mutating func deliver(_ report: Report, to n: Int) {
        let index = nodes[n].index
        var actions: [SyncAction]
        switch report {
        case let .installed(path, version, local):
            note("\(nodes[n].name) installed \(path) v\(version) = \(describe(local))")
            actions = nodes[n].reconciler.installed(path, version: version, local: local, index: index)
        case let .installFailed(path, version, failure):
            note("\(nodes[n].name) install of \(path) v\(version) failed: \(failure)")
            actions = nodes[n].reconciler.installFailed(path, version: version, failure, index: index)
        case let .conflictCopied(path, copy, local):
            note("\(nodes[n].name) conflict copy of \(path) made: \(copy)")
            actions = nodes[n].reconciler.conflictCopied(path, to: copy, local: local, index: index)
        case let .conflictCopyFailed(path):
            note("\(nodes[n].name) conflict copy of \(path) not made: changed")
            actions = nodes[n].reconciler.conflictCopyFailed(path, index: index)
        case let .observed(path):
            let local = nodes[n].disk[path]
            note("\(nodes[n].name) observe \(path) = \(describe(local))")
            actions = nodes[n].reconciler.observed(path, local, index: index)
        }
        afterReconciler(n, actions)
    }

    /// Does an action's disk work now (checking `expected` first, as the real
    /// node does just before its rename) and reports the result later.
    mutating func execute(_ action: SyncAction, on n: Int) {
        let name = nodes[n].name
        let index = nodes[n].index
        let disk = nodes[n].disk[action.path]
        note("\(name) exec \(describe(action)) [disk \(describe(disk))]")
        switch action {
        case let .fetch(record, expected):
            guard reconcilerDiskMatches(disk, expected) else {
                return report(n, .installFailed(path: record.path, version: record.version, .localChanged))
            }
            let hasBytes = nodes.indices.contains { m in
                m != n && nodes[m].disk[record.path].map { $0.kind == .file && $0.hash == record.hash } == true
            }
            // Like LocalDisk: a directory in the way is removed only if empty.
            guard hasBytes, !(disk?.kind == .directory && nodes[n].disk.hasChildren(record.path)),
                  makeParents(n, record.path) else {
                return report(n, .installFailed(path: record.path, version: record.version, .transient("no holder has the bytes")))
            }
            install(n, record.path, record.version, LocalFile(kind: .file, size: record.size, mode: record.mode,
                                                              mtime: record.mtime, hash: record.hash, inode: newInode()))
        case let .makeDirectory(record, expected):
            guard reconcilerDiskMatches(disk, expected) else {
                return report(n, .installFailed(path: record.path, version: record.version, .localChanged))
            }
            guard makeParents(n, record.path) else {
                return report(n, .installFailed(path: record.path, version: record.version, .transient("parent")))
            }
            var local = LocalFile(kind: .directory, mode: record.mode, mtime: now(), inode: newInode())
            if let disk, disk.kind == .directory {
                local.inode = disk.inode
                local.mtime = disk.mtime
            }
            install(n, record.path, record.version, local)
        case let .makeSymlink(record, expected):
            guard reconcilerDiskMatches(disk, expected) else {
                return report(n, .installFailed(path: record.path, version: record.version, .localChanged))
            }
            guard !(disk?.kind == .directory && nodes[n].disk.hasChildren(record.path)), makeParents(n, record.path) else {
                return report(n, .installFailed(path: record.path, version: record.version, .transient("parent")))
            }
            install(n, record.path, record.version,
                    LocalFile(kind: .symlink, mode: 0o777, mtime: record.mtime, target: record.target, inode: newInode()))
        case let .setModificationTime(record, expected):
            guard var local = disk, reconcilerDiskMatches(local, expected) else {
                return report(n, .installFailed(path: record.path, version: record.version, .localChanged))
            }
            local.mtime = record.mtime
            local.mode = record.mode
            install(n, record.path, record.version, local)
        case let .remove(path, version, expected):
            guard reconcilerDiskMatches(disk, expected) else {
                return report(n, .installFailed(path: path, version: version, .localChanged))
            }
            if disk?.kind == .directory && nodes[n].disk.hasChildren(path) {
                return report(n, .installFailed(path: path, version: version, .transient("directory not empty")))
            }
            install(n, path, version, nil)
        case let .conflictCopy(path, expected):
            guard let local = disk, reconcilerDiskMatches(local, expected) else { return report(n, .conflictCopyFailed(path: path)) }
            if let record = index.record(at: path), local.kind == .file, record.kind == .file, local.hash == record.hash {
                // The version that beat ours was different, but the index has
                // since moved to our bytes: a harmless race, counted.
                lateIdenticalCopies += 1
            }
            var copy = ConflictName.conflictCopyName(for: path, secondsSinceEpoch: now(), node: name)
            while nodes[n].disk[copy] != nil {
                copy = ConflictName.conflictCopyName(for: path, secondsSinceEpoch: now(), node: name)
            }
            // A directory moves with everything in it; the watcher reports
            // that rename, and the node then looks at both subtrees.
            let inside = local.kind == .directory ? nodes[n].disk.descendants(of: path) : []
            var moved: [String] = []
            for old in inside.reversed() {
                let new = copy + String(decoding: old.utf8.dropFirst(path.utf8.count), as: UTF8.self)
                nodes[n].disk.set(new, nodes[n].disk[old], clock: clock)
                moved.append(new)
            }
            for old in inside { nodes[n].disk.set(old, nil, clock: clock) }
            nodes[n].disk.set(path, nil, clock: clock)
            nodes[n].disk.set(copy, local, clock: clock)
            note("\(name) renamed \(path) -> \(copy)")
            if random.below(2) == 0 || !inside.isEmpty { watch(n, [path, copy] + inside + moved) }
            report(n, .conflictCopied(path: path, copy: copy, local: local))
        case let .observe(path):
            deliver(.observed(path: path), to: n)
        case .retryLater:
            break
        }
    }

    /// Installs the reconciler's parents like `mkdir -p`; false when an ancestor is not a directory.
    mutating func makeParents(_ n: Int, _ path: String) -> Bool {
        guard let created = nodes[n].disk.makeParents(of: path, clock: &clock, inodes: &inodes) else { return false }
        watch(n, created)
        return true
    }

    mutating func install(_ n: Int, _ path: String, _ version: UInt64, _ local: LocalFile?) {
        nodes[n].disk.set(path, local, clock: now())
        // The watcher sees the node's own rename into place, sometimes after the user's next change.
        if random.below(2) == 0 { watch(n, [path]) }
        report(n, .installed(path: path, version: version, local: local))
    }
}

/// The path an action is about, for the trace. Test only.
extension SyncAction {
    var path: String {
        switch self {
        case let .fetch(record, _), let .makeDirectory(record, _), let .makeSymlink(record, _),
             let .setModificationTime(record, _): record.path
        case let .remove(path, _, _), let .conflictCopy(path, _), let .observe(path), let .retryLater(path): path
        }
    }
}
