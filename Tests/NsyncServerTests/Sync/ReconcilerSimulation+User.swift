@testable import NsyncServer

/// The simulated users: random operations on random nodes' disks, each
/// followed by the watcher's event, and the bookkeeping of which contents a
/// user wrote and which a user then dropped. Test only.
extension ReconcilerSimulation {

    mutating func now() -> Int64 {
        clock += 1
        return clock
    }

    mutating func newInode() -> UInt64 {
        inodes += 1
        return inodes
    }

    mutating func watch(_ n: Int, _ paths: [String]) {
        for path in paths { pending.append(.observe(node: n, path: path, incarnation: nodes[n].incarnation)) }
    }

    /// The user on node `n` destroys whatever is at `path` (content they saw: superseded).
    mutating func supersede(_ n: Int, _ path: String) {
        if let old = nodes[n].disk[path], old.kind == .file, let id = contentOfHash[old.hash] { superseded.insert(id) }
    }

    mutating func newContent() -> UInt64 {
        nextContent += 1
        let hash = ReconcilerTestContent.hash(nextContent)
        contentOfHash[hash] = nextContent
        hashOfContent[nextContent] = hash
        return nextContent
    }

    mutating func userOperation() {
        let n = random.below(nodes.count)
        let leaf = leaves[random.below(leaves.count)]
        switch random.below(100) {
        case 0..<30:
            userWrite(n, leaf, content: newContent())
        case 30..<40:
            // Concurrent edits of one path on two nodes.
            let m = (n + 1 + random.below(nodes.count - 1)) % nodes.count
            userWrite(n, leaf, content: newContent())
            userWrite(m, leaf, content: newContent())
        case 40..<44:
            // The same bytes written on two nodes: must not conflict.
            let m = (n + 1 + random.below(nodes.count - 1)) % nodes.count
            let content = newContent()
            userWrite(n, leaf, content: content)
            userWrite(m, leaf, content: content)
        case 44..<58:
            let existing = nodes[n].disk.paths
            if existing.isEmpty { return }
            userDelete(n, existing[random.below(existing.count)])
        case 58..<64:
            userMakeDirectory(n, directories[random.below(directories.count)])
        case 64..<70:
            userSymlink(n, leaf, target: Self.targets[random.below(Self.targets.count)])
        case 70..<76:
            let existing = nodes[n].disk.paths
            if existing.isEmpty { return }
            userChmod(n, existing[random.below(existing.count)])
        case 76..<80:
            let files = nodes[n].disk.paths.filter { nodes[n].disk[$0]?.kind == .file }
            if files.isEmpty { return }
            userTouch(n, files[random.below(files.count)])
        case 80..<85:
            let files = nodes[n].disk.paths.filter { nodes[n].disk[$0]?.kind != .directory }
            if files.isEmpty { return }
            userRename(n, files[random.below(files.count)], to: leaf)
        case 85..<92:
            // Edit any existing file, conflict copies included.
            let files = nodes[n].disk.paths.filter { nodes[n].disk[$0]?.kind == .file }
            if files.isEmpty { return }
            userWrite(n, files[random.below(files.count)], content: newContent())
        default:
            // Re-create a name this node knows was deleted (as a file: only
            // names that were never directories, unless kinds may change).
            let deleted = nodes[n].index.filter(\.isTombstone).map(\.path)
                .filter { options.kindChanges || !isDirectoryName($0) }
            userWrite(n, deleted.isEmpty ? leaf : deleted[random.below(deleted.count)], content: newContent())
        }
    }

    /// Whether `path` is a directory in this run's name pools (listed, or a leaf's ancestor).
    func isDirectoryName(_ path: String) -> Bool {
        directories.contains { $0.utf8.elementsEqual(path.utf8) }
            || leaves.contains { ReconcilerFakeDisk.isInside($0, path) }
    }

    mutating func userParents(_ n: Int, _ path: String) -> Bool {
        guard let created = nodes[n].disk.makeParents(of: path, clock: &clock, inodes: &inodes) else { return false }
        watch(n, created)
        return true
    }

    mutating func userWrite(_ n: Int, _ path: String, content: UInt64) {
        let old = nodes[n].disk[path]
        if old?.kind == .directory || !userParents(n, path) { return }
        supersede(n, path)
        let inPlace = old?.kind == .file && random.below(2) == 0
        let local = LocalFile(kind: .file, size: ReconcilerTestContent.size(content),
                              mode: old?.kind == .file ? old!.mode : 0o644, mtime: now(),
                              hash: hashOfContent[content]!, inode: inPlace ? old!.inode : newInode())
        nodes[n].disk.set(path, local, clock: clock)
        written.insert(content)
        note("\(nodes[n].name) USER write \(path) = #\(content)")
        watch(n, [path])
    }

    mutating func userDelete(_ n: Int, _ path: String) {
        guard let old = nodes[n].disk[path] else { return }
        var removed: [String] = []
        if old.kind == .directory { removed = nodes[n].disk.descendants(of: path) }
        removed.append(path)
        let time = now()
        for victim in removed {
            supersede(n, victim)
            nodes[n].disk.set(victim, nil, clock: time)
        }
        note("\(nodes[n].name) USER delete \(path) (\(removed.count))")
        watch(n, removed)
    }

    mutating func userMakeDirectory(_ n: Int, _ path: String) {
        if nodes[n].disk[path] != nil || !userParents(n, path) { return }
        nodes[n].disk.set(path, LocalFile(kind: .directory, mode: 0o755, mtime: now(), inode: newInode()), clock: clock)
        note("\(nodes[n].name) USER mkdir \(path)")
        watch(n, [path])
    }

    mutating func userSymlink(_ n: Int, _ path: String, target: String) {
        let old = nodes[n].disk[path]
        if old?.kind == .directory || !userParents(n, path) { return }
        supersede(n, path)
        nodes[n].disk.set(path, LocalFile(kind: .symlink, mode: 0o777, mtime: now(), target: target, inode: newInode()),
                          clock: clock)
        note("\(nodes[n].name) USER symlink \(path) -> \(target)")
        watch(n, [path])
    }

    mutating func userChmod(_ n: Int, _ path: String) {
        guard var local = nodes[n].disk[path], local.kind != .symlink else { return }
        switch local.mode {
        case 0o644: local.mode = 0o600
        case 0o600: local.mode = 0o644
        case 0o755: local.mode = 0o700
        default: local.mode = 0o755
        }
        nodes[n].disk.set(path, local, clock: now())
        note("\(nodes[n].name) USER chmod \(path) \(String(local.mode, radix: 8))")
        watch(n, [path])
    }

    mutating func userTouch(_ n: Int, _ path: String) {
        guard var local = nodes[n].disk[path] else { return }
        local.mtime = now()
        nodes[n].disk.set(path, local, clock: clock)
        note("\(nodes[n].name) USER touch \(path)")
        watch(n, [path])
    }

    mutating func userRename(_ n: Int, _ source: String, to destination: String) {
        guard source != destination, let local = nodes[n].disk[source], nodes[n].disk[destination] == nil,
              userParents(n, destination) else { return }
        let time = now()
        nodes[n].disk.set(source, nil, clock: time)
        nodes[n].disk.set(destination, local, clock: time)
        if let known = nodes[n].reconciler.manifest[source]?.local, known.kind == .file {
            nodes[n].renamedTo.insert(destination)
        }
        note("\(nodes[n].name) USER rename \(source) -> \(destination)")
        watch(n, [source, destination])
    }
}
