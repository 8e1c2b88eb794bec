import Foundation
@testable import NsyncServer

/// The changes a chaos round makes to one node's disk, each run with that
/// node's daemon stopped (by the caller) so that what it looks at before the
/// change is what the change replaces; each records in the model what it
/// wrote, moved or replaced, and returns false (after noting why) when the
/// change is not possible on that disk now. The test's thread.
extension ChaosRun {
    /// A new content at `path` (parents made as needed), replacing a file there.
    func write(_ node: Int, _ path: String) throws -> Bool {
        let existing = kind(node, path)
        guard canHold(node, path), existing == nil || existing == .file else { return skipped("write", node, path) }
        let (token, bytes) = newText(node)
        let mode = pick(Self.fileModes)
        // Some writes go the rsync way (written elsewhere, mtime set, renamed in): a new inode.
        let mtime: Int64? = random.next() % 10 < 3 ? randomModificationTime() : nil
        if existing == .file { model.destroyed(try hashes(node, path).map(\.hash), node: node, round: round, how: "overwrote", path: path) }
        try cluster.write(node, path, bytes, mode: mode, mtime: mtime)
        model.wrote(Self.hex(bytes), token: token, node: node, round: round, path: path, size: bytes.count, at: Date())
        note("node\(node + 1) wrote \(path): \(token), \(bytes.count) B, mode \(String(mode, radix: 8))"
             + (mtime == nil ? "" : ", renamed into place"))
        return true
    }

    /// A token line appended: the old content is gone, the longer one is new.
    func append(_ node: Int, _ path: String) throws -> Bool {
        guard kind(node, path) == .file, let old = cluster.read(node, path) else { return skipped("append", node, path) }
        let token = "r\(round)-n\(node + 1)-\(String(random.next(), radix: 16))"
        let line = Array((token + " appended\n").utf8)
        model.destroyed([Self.hex(old)], node: node, round: round, how: "appended to", path: path)
        let fd = open(cluster.path(node, path), O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw ClusterError("open \(cluster.path(node, path)): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard line.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == line.count else {
            throw ClusterError("append to \(cluster.path(node, path)): \(String(cString: strerror(errno)))")
        }
        model.wrote(Self.hex(old + line), token: token, node: node, round: round, path: path, size: old.count + line.count, at: Date())
        note("node\(node + 1) appended to \(path): \(token), now \(old.count + line.count) B")
        return true
    }

    /// A token written into the file in place (a database's page, say), at
    /// a random offset that may reach past its end: the old content is gone.
    func patch(_ node: Int, _ path: String) throws -> Bool {
        guard kind(node, path) == .file, let old = cluster.read(node, path) else { return skipped("patch", node, path) }
        let token = "r\(round)-n\(node + 1)-\(String(random.next(), radix: 16))"
        let bytes = Array((token + " patched in place\n").utf8)
        let offset = Int(random.next() % UInt64(old.count + 1))
        model.destroyed([Self.hex(old)], node: node, round: round, how: "patched", path: path)
        let fd = open(cluster.path(node, path), O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ClusterError("open \(cluster.path(node, path)): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard bytes.withUnsafeBytes({ pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }) == bytes.count else {
            throw ClusterError("patch \(cluster.path(node, path)): \(String(cString: strerror(errno)))")
        }
        var new = old
        new.replaceSubrange(offset..<min(offset + bytes.count, old.count), with: bytes)
        model.wrote(Self.hex(new), token: token, node: node, round: round, path: path, size: new.count, at: Date())
        note("node\(node + 1) patched \(path) at \(offset): \(token), now \(new.count) B")
        return true
    }

    /// Truncated to empty: the old content is gone (an empty file is no content).
    func truncate(_ node: Int, _ path: String) throws -> Bool {
        guard kind(node, path) == .file else { return skipped("truncate", node, path) }
        model.destroyed(try hashes(node, path).map(\.hash), node: node, round: round, how: "truncated", path: path)
        guard Glibc.truncate(cluster.path(node, path), 0) == 0 else {
            throw ClusterError("truncate \(cluster.path(node, path)): \(String(cString: strerror(errno)))")
        }
        note("node\(node + 1) truncated \(path) to empty")
        return true
    }

    /// rm, or rm -rf for a directory.
    func delete(_ node: Int, _ path: String) throws -> Bool {
        guard let kind = kind(node, path) else { return skipped("delete", node, path) }
        let held = try hashes(node, path)
        model.destroyed(held.map(\.hash), node: node, round: round, how: kind == .directory ? "rm -rf" : "deleted", path: path)
        try cluster.remove(node, path)
        note("node\(node + 1) \(kind == .directory ? "rm -rf" : "deleted") \(path) (\(held.count) files)")
        return true
    }

    /// mkdir -p with a mode, and one to three files written inside.
    func makeDirectory(_ node: Int, _ path: String) throws -> Bool {
        let kind = kind(node, path)
        guard canHold(node, path), kind == nil || kind == .directory else { return skipped("mkdir", node, path) }
        let mode = pick(Self.directoryModes)
        try cluster.makeDirectory(node, path, mode: mode)
        note("node\(node + 1) mkdir \(path), mode \(String(mode, radix: 8))")
        for _ in 0..<(1 + Int(random.next() % 3)) {
            _ = try write(node, path + "/" + pick(["g0.txt", "g1.md", "r\(round).txt"]))
        }
        return true
    }

    /// mv one of the files there onto another name of the pool it may take.
    func renameFile(_ node: Int) throws -> Bool {
        guard let source = pickPresent(node, Self.files, [.file]) else { return skipped("rename", node, "(no file)") }
        let targets = Self.files.filter { $0 != source && canHold(node, $0) && [nil, .file].contains(kind(node, $0)) }
        guard !targets.isEmpty else { return skipped("rename", node, "\(source) (nowhere to go)") }
        return try renameFile(node, from: source, to: pick(targets))
    }

    /// mv a file onto a name that is free or a file (whose content it replaces).
    func renameFile(_ node: Int, from source: String, to target: String) throws -> Bool {
        let targetKind = kind(node, target)
        guard kind(node, source) == .file, canHold(node, target), targetKind == nil || targetKind == .file else {
            return skipped("rename", node, "\(source) -> \(target)")
        }
        let moving = try hashes(node, source)
        let replaced = try hashes(node, target).map(\.hash).filter { !moving.map(\.hash).contains($0) }
        model.destroyed(replaced, node: node, round: round, how: "renamed \(source) over", path: target)
        try cluster.rename(node, source, target)
        model.moved(moving.map { ($0.hash, source, target) }, node: node, round: round, at: Date())
        note("node\(node + 1) renamed \(source) -> \(target)" + (replaced.isEmpty ? "" : ", replacing it"))
        return true
    }

    /// mv a directory onto a free name or an empty directory.
    func renameDirectory(_ node: Int) throws -> Bool {
        guard let source = pickPresent(node, Self.directories, [.directory]) else {
            return skipped("rename directory", node, "(no directory)")
        }
        let targets = Self.directories.filter { target in
            let kind = kind(node, target)
            return target != source && canHold(node, target) && !target.hasPrefix(source + "/") && !source.hasPrefix(target + "/")
                && (kind == nil || (kind == .directory && ((try? ClusterTree.listDirectory(cluster.path(node, target))) ?? ["?"]).isEmpty))
        }
        guard !targets.isEmpty else { return skipped("rename directory", node, "\(source) (nowhere to go)") }
        let target = pick(targets)
        let moving = try hashes(node, source)
        try cluster.rename(node, source, target)
        model.moved(moving.map { ($0.hash, source + "/" + $0.path, target + "/" + $0.path) }, node: node, round: round, at: Date())
        note("node\(node + 1) renamed directory \(source) -> \(target) (\(moving.count) files)")
        return true
    }

    /// A symlink, replacing one already there; targets inside, outside and nowhere, never followed.
    func symlink(_ node: Int, _ path: String) throws -> Bool {
        let kind = kind(node, path)
        guard canHold(node, path), kind == nil || kind == .symlink else { return skipped("symlink", node, path) }
        let target = pick(["f0.txt", "d0/g0.txt", "../outside", "nowhere-\(round)", "d1"])
        if kind == .symlink { try cluster.remove(node, path) }
        try cluster.makeSymlink(node, path, target: target)
        note("node\(node + 1) symlink \(path) -> \(target)")
        return true
    }

    /// A new mode on a file or directory there (always readable and writable by us).
    func chmod(_ node: Int, _ path: String) throws -> Bool {
        let kind = kind(node, path)
        guard kind == .file || kind == .directory else { return skipped("chmod", node, path) }
        let mode = kind == .file ? pick(Self.fileModes) : pick(Self.directoryModes)
        try cluster.setMode(node, path, mode)
        note("node\(node + 1) chmod \(String(mode, radix: 8)) \(path)")
        return true
    }

    /// A new mtime on a file or symlink there (`touch -h`): same bytes or
    /// target, announced as a touch.
    func touch(_ node: Int, _ path: String) throws -> Bool {
        guard kind(node, path) == .file || kind(node, path) == .symlink else { return skipped("touch", node, path) }
        let mtime = randomModificationTime()
        try cluster.setModificationTime(node, path, mtime)
        note("node\(node + 1) touch \(path) (mtime \(mtime))")
        return true
    }

    /// 1-4 MiB: a token, then one random MiB repeated, each MiB stamped with its offset.
    func writeLarge(_ node: Int, _ path: String) throws -> Bool {
        let kind = kind(node, path)
        guard canHold(node, path), kind == nil || kind == .file else { return skipped("large", node, path) }
        let token = "r\(round)-n\(node + 1)-\(String(random.next(), radix: 16))"
        let size = (1 + Int(random.next() % 4)) << 20 + Int(random.next() % 65_536)
        var block = random.bytes(1 << 20)
        let header = Array((token + "\n").utf8)
        block.replaceSubrange(0..<header.count, with: header)
        if kind == .file { model.destroyed(try hashes(node, path).map(\.hash), node: node, round: round, how: "overwrote", path: path) }
        let hasher = SHA256()
        try cluster.write(node, path, size: size) { offset, count in
            var piece = Array(block[0..<count])
            if offset > 0 {
                withUnsafeBytes(of: UInt64(offset).bigEndian) { piece.replaceSubrange(0..<min(8, count), with: $0.prefix(count)) }
            }
            hasher.update(piece)
            return piece
        }
        model.wrote(SHA256.hex(hasher.finalize()), token: token, node: node, round: round, path: path, size: size, at: Date())
        note("node\(node + 1) wrote \(path): \(token), \(size) B")
        return true
    }

    // MARK: looking at a node's disk

    /// What `path` is on `node` (lstat: a symlink is not followed); nil if absent.
    func kind(_ node: Int, _ path: String) -> ClusterTreeEntry.Kind? {
        var status = stat()
        guard lstat(cluster.path(node, path), &status) == 0 else { return nil }
        switch status.st_mode & S_IFMT {
        case S_IFREG: return .file
        case S_IFDIR: return .directory
        case S_IFLNK: return .symlink
        default: return .other
        }
    }

    /// Whether every parent of `path` on `node` is a directory or absent
    /// (made by mkdir -p): never a file, and never a symlink to follow.
    func canHold(_ node: Int, _ path: String) -> Bool {
        var parent = Substring(path)
        while let slash = parent.lastIndex(of: "/") {
            parent = parent[..<slash]
            if let kind = kind(node, String(parent)), kind != .directory { return false }
        }
        return true
    }

    /// The contents at `path` on `node`: a file's, or every file's below a
    /// directory (paths relative to it); none for a symlink or nothing.
    func hashes(_ node: Int, _ path: String) throws -> [(path: String, hash: String)] {
        switch kind(node, path) {
        case .file:
            return try ClusterTree.hashFile(cluster.path(node, path)).map { [("", $0)] } ?? []
        case .directory:
            let tree = try ClusterTree.read(root: cluster.path(node, path))
            return tree.paths.compactMap { p in tree[p].flatMap { $0.kind == .file ? (p, $0.hash) : nil } }
        default:
            return []
        }
    }

    // MARK: choosing

    /// One of `choices`, from this round's generator.
    func pick<T>(_ choices: [T]) -> T { choices[Int(random.next() % UInt64(choices.count))] }

    /// One of the names in `pool` that is one of `kinds` on `node`'s disk now; nil if none is.
    func pickPresent(_ node: Int, _ pool: [String], _ kinds: Set<ClusterTreeEntry.Kind>) -> String? {
        let present = pool.filter { kind(node, $0).map(kinds.contains) ?? false }
        return present.isEmpty ? nil : pick(present)
    }

    /// A token line (`r17-n2-<hex>`: round, node, random) and up to 1.5 KB of text.
    func newText(_ node: Int) -> (token: String, bytes: [UInt8]) {
        let token = "r\(round)-n\(node + 1)-\(String(random.next(), radix: 16))"
        let letters = Array("abcdefghijklmnopqrstuvwxyz  \n".utf8)
        // One in eight is over 1 MiB: an append to it then fetches only the
        // new bytes on the other nodes (`Fetcher+Extend`).
        let length = random.next() % 8 == 0 ? (1 << 20) + Int(random.next() % (1 << 20)) : Int(random.next() % 1500)
        let filler = random.bytes(length).map { letters[Int($0) % letters.count] }
        return (token, Array((token + "\n").utf8) + filler)
    }

    /// Somewhere in the last ~10 days, with nanoseconds.
    func randomModificationTime() -> Int64 {
        let now = Int64(Date().timeIntervalSince1970)
        return (now - Int64(random.next() % 864_000)) * 1_000_000_000 + Int64(random.next() % 1_000_000_000)
    }

    /// Notes a change that this disk does not allow now; false.
    func skipped(_ what: String, _ node: Int, _ path: String) -> Bool {
        note("node\(node + 1) \(what) \(path): not possible on its disk now, skipped")
        return false
    }

    static func hex(_ bytes: [UInt8]) -> String { SHA256.hex(SHA256.hash(bytes)) }
}
