@testable import NsyncServer

/// What must hold once the cluster is quiet, and the trace text that makes
/// a failing seed readable. Test only.
extension ReconcilerSimulation {

    /// Convergence, holders, manifests, and no lost content; appends to `failures`.
    mutating func check() {
        let reference = nodes[0].index
        for node in nodes {
            if node.applied != log.count { fail("\(node.name) applied \(node.applied) of \(log.count) entries") }
            if node.index != reference { fail("\(node.name)'s index differs from \(nodes[0].name)'s") }
            var live = PathSet()
            for record in node.index {
                if record.isTombstone {
                    fail("tombstone \(record.path) v\(record.version) left, held by \(record.holders.sorted())")
                    continue
                }
                live.insert(record.path)
                if record.holders != Set(names) {
                    fail("\(record.path) v\(record.version) held by \(record.holders.sorted()) only")
                }
                guard let local = node.disk[record.path] else {
                    fail("\(node.name) lacks \(record.path) (\(describe(record)))")
                    continue
                }
                if !local.sameContent(as: record) {
                    fail("\(node.name) has \(record.path) = \(describe(local)); index: \(describe(record))")
                } else if local.kind == .file || local.kind == .symlink, local.mtime != record.mtime {
                    fail("\(node.name) has \(record.path) with mtime \(local.mtime); index: \(record.mtime)")
                }
                let entry = node.reconciler.manifest[record.path]
                if entry?.version != record.version || !(entry?.local?.sameContent(as: record) ?? false) {
                    fail("\(node.name)'s manifest says \(record.path) = \(String(describing: entry)); index: v\(record.version)")
                }
            }
            for path in node.disk.paths where !live.contains(path) {
                fail("\(node.name) has \(path) = \(describe(node.disk[path])), which the index does not")
            }
            if node.reconciler.hasPendingWork { fail("\(node.name)'s reconciler still has pending work") }
        }
        let hashesOnDisk = nodes.map { node in Set(node.disk.paths.compactMap { node.disk[$0]?.hash }) }
        for content in written.subtracting(superseded).sorted() {
            let hash = hashOfContent[content]!
            for (n, node) in nodes.enumerated() where !hashesOnDisk[n].contains(hash) {
                fail("content #\(content) (never overwritten or deleted by a user) is lost on \(node.name)")
            }
        }
    }

    // MARK: trace text

    func describe(_ local: LocalFile?) -> String {
        guard let local else { return "-" }
        switch local.kind {
        case .file: return "#\(contentOfHash[local.hash].map(String.init) ?? "?")/\(String(local.mode, radix: 8))@\(local.mtime)i\(local.inode)"
        case .directory: return "dir/\(String(local.mode, radix: 8))"
        case .symlink: return "->\(local.target)@\(local.mtime)"
        case .deleted: return "deleted"
        }
    }

    func describe(_ record: FileRecord) -> String {
        let body: String
        switch record.kind {
        case .file: body = "#\(contentOfHash[record.hash].map(String.init) ?? "?")/\(String(record.mode, radix: 8))"
        case .directory: body = "dir/\(String(record.mode, radix: 8))"
        case .symlink: body = "->\(record.target)"
        case .deleted: body = "deleted"
        }
        return "v\(record.version) \(body) by \(record.origin) held \(record.holders.sorted().joined(separator: ","))"
    }

    func describe(_ outcome: ChangeOutcome) -> String {
        switch outcome {
        case let .accepted(version): "ok\(version)"
        case let .alreadyCurrent(version): "cur\(version)"
        case let .rejected(current): "REJ(v\(current.version))"
        case .stale: "stale"
        case let .invalid(reason): "INVALID(\(reason))"
        }
    }

    func describe(_ changes: [IndexChange]) -> String {
        changes.map { change in
            switch change {
            case let .put(put):
                let what: String
                switch put.kind {
                case .file: what = "#\(contentOfHash[put.hash].map(String.init) ?? "?")/\(String(put.mode, radix: 8))"
                case .directory: what = "dir/\(String(put.mode, radix: 8))"
                case .symlink: what = "->\(put.target)"
                case .deleted: what = "deleted"
                }
                return "put \(put.path)=\(what) base \(put.baseVersion)"
            case let .hold(path, version): return "hold \(path)@\(version)"
            case let .forget(path, version): return "forget \(path)@\(version)"
            }
        }.joined(separator: ", ")
    }

    func describe(_ action: SyncAction) -> String {
        switch action {
        case let .fetch(record, expected): "fetch \(record.path) \(describe(record)) expecting \(describe(expected))"
        case let .makeDirectory(record, expected): "mkdir \(record.path) v\(record.version) expecting \(describe(expected))"
        case let .makeSymlink(record, expected): "symlink \(record.path) v\(record.version) expecting \(describe(expected))"
        case let .setModificationTime(record, expected): "mtime \(record.path) v\(record.version) expecting \(describe(expected))"
        case let .remove(path, version, expected): "remove \(path) v\(version) expecting \(describe(expected))"
        case let .conflictCopy(path, expected): "conflictCopy \(path) expecting \(describe(expected))"
        case let .observe(path): "observe \(path)"
        case let .retryLater(path): "retryLater \(path)"
        }
    }
}
