import Foundation
@testable import NsyncServer

/// What one path of a synced directory is on disk, as the end-to-end tests
/// compare it between nodes: kind, permission bits, and by kind the size,
/// content hash and mtime (files) or the target and mtime (symlinks).
/// Directory mtimes and symlink modes are left out: the kernel changes the
/// first whenever a child changes and Linux has no use for the second. A
/// plain value.
struct ClusterTreeEntry: Equatable, CustomStringConvertible {
    enum Kind: String { case file, directory, symlink, other }

    var kind: Kind
    var mode: UInt32
    var size: UInt64
    /// SHA-256 hex of the content (files); "" otherwise, or when only stats were read.
    var hash: String
    /// Nanoseconds since the epoch (files and symlinks); 0 for directories.
    var mtime: Int64
    var target: String

    static func == (a: ClusterTreeEntry, b: ClusterTreeEntry) -> Bool {
        a.kind == b.kind && a.mode == b.mode && a.size == b.size && a.hash == b.hash && a.mtime == b.mtime
            && a.target.utf8.elementsEqual(b.target.utf8)
    }

    var description: String {
        switch kind {
        case .file: "file \(String(mode, radix: 8)) \(size) B sha256 \(hash.prefix(12)) mtime \(mtime)"
        case .directory: "dir \(String(mode, radix: 8))"
        case .symlink: "symlink -> \(target) mtime \(mtime)"
        case .other: "other (not a file, directory or symlink) \(String(mode, radix: 8))"
        }
    }
}

/// A snapshot of one node's synced directory (without its .nsync state),
/// keyed by relative path compared byte for byte: "é" composed and
/// decomposed are two names on Linux, and a sync that renormalized one into
/// the other must show as a difference. A plain value.
struct ClusterTree: Equatable {
    private(set) var entries: [[UInt8]: (path: String, entry: ClusterTreeEntry)] = [:]

    static func == (a: ClusterTree, b: ClusterTree) -> Bool {
        a.entries.count == b.entries.count && a.entries.allSatisfy { key, value in b.entries[key]?.entry == value.entry }
    }

    subscript(_ path: String) -> ClusterTreeEntry? {
        get { entries[Array(path.utf8)]?.entry }
        set { entries[Array(path.utf8)] = newValue.map { (path, $0) } }
    }

    var count: Int { entries.count }

    /// Relative paths, sorted by their bytes.
    var paths: [String] {
        entries.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map(\.value.path)
    }

    /// Paths whose name has the conflict-copy shape.
    var conflictCopies: [String] { paths.filter { ConflictName.isConflictCopy($0) } }

    /// Up to `limit` human lines saying how `other` (named `otherName`) differs.
    func differences(to other: ClusterTree, name: String, otherName: String, limit: Int = 12) -> [String] {
        var lines: [String] = []
        let keys = Set(entries.keys).union(other.entries.keys).sorted { $0.lexicographicallyPrecedes($1) }
        for key in keys {
            let mine = entries[key]
            let theirs = other.entries[key]
            if mine?.entry == theirs?.entry { continue }
            let path = mine?.path ?? theirs!.path
            lines.append("  \(path): \(name) has \(mine?.entry.description ?? "nothing"), \(otherName) has \(theirs?.entry.description ?? "nothing")")
            if lines.count == limit {
                lines.append("  ...")
                break
            }
        }
        return lines
    }

    /// Reads `root` recursively, skipping `root/.nsync`. With `hashing`
    /// false, files get no hash (a cheap first comparison); `cache` keeps
    /// hashes of files whose stat has not changed since the last read.
    static func read(root: String, hashing: Bool = true, cache: ClusterHashCache? = nil) throws -> ClusterTree {
        var tree = ClusterTree()
        var pending = [""]
        while let directory = pending.popLast() {
            let full = directory.isEmpty ? root : root + "/" + directory
            for name in try listDirectory(full) {
                if directory.isEmpty && name == IgnoreRules.stateDirectoryName { continue }
                let relative = directory.isEmpty ? name : directory + "/" + name
                let path = full + "/" + name
                var status = stat()
                guard lstat(path, &status) == 0 else {
                    // Removed between readdir and lstat: the tree is still moving.
                    if errno == ENOENT { continue }
                    throw ClusterError("lstat \(path): \(String(cString: strerror(errno)))")
                }
                let mode = UInt32(status.st_mode) & 0o7777
                let mtime = Int64(status.st_mtim.tv_sec) * 1_000_000_000 + Int64(status.st_mtim.tv_nsec)
                switch status.st_mode & S_IFMT {
                case S_IFDIR:
                    tree[relative] = ClusterTreeEntry(kind: .directory, mode: mode, size: 0, hash: "", mtime: 0, target: "")
                    pending.append(relative)
                case S_IFLNK:
                    let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?"
                    tree[relative] = ClusterTreeEntry(kind: .symlink, mode: 0, size: 0, hash: "", mtime: mtime, target: target)
                case S_IFREG:
                    var hash = ""
                    if hashing {
                        guard let digest = try cache?.hash(path: path, status: status) ?? hashFile(path) else { continue }
                        hash = digest
                    }
                    tree[relative] = ClusterTreeEntry(kind: .file, mode: mode, size: UInt64(status.st_size), hash: hash,
                                                      mtime: mtime, target: "")
                default:
                    tree[relative] = ClusterTreeEntry(kind: .other, mode: mode, size: 0, hash: "", mtime: 0, target: "")
                }
            }
        }
        return tree
    }

    /// Names in `path` (not . or ..), as the bytes readdir returns them.
    static func listDirectory(_ path: String) throws -> [String] {
        guard let directory = opendir(path) else {
            if errno == ENOENT { return [] }
            throw ClusterError("opendir \(path): \(String(cString: strerror(errno)))")
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// SHA-256 hex of a file's content, read in 1 MiB pieces; nil if it vanished.
    static func hashFile(_ path: String) throws -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw ClusterError("open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ClusterError("read \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            hasher.update(buffer[0..<n])
        }
        return SHA256.hex(hasher.finalize())
    }
}

/// Hashes of files by path, reused while the file's inode, size, mtime and
/// ctime are unchanged, so polling a large tree for convergence does not
/// rehash every byte each round. One per node; the test's thread.
final class ClusterHashCache {
    private struct Key: Equatable {
        var inode: UInt64
        var size: Int64
        var mtime: timespec
        var ctime: timespec
        static func == (a: Key, b: Key) -> Bool {
            a.inode == b.inode && a.size == b.size && a.mtime.tv_sec == b.mtime.tv_sec && a.mtime.tv_nsec == b.mtime.tv_nsec
                && a.ctime.tv_sec == b.ctime.tv_sec && a.ctime.tv_nsec == b.ctime.tv_nsec
        }
    }

    private var hashes: [String: (key: Key, hash: String)] = [:]

    func hash(path: String, status: stat) throws -> String? {
        let key = Key(inode: UInt64(status.st_ino), size: Int64(status.st_size), mtime: status.st_mtim, ctime: status.st_ctim)
        if let known = hashes[path], known.key == key { return known.hash }
        guard let hash = try ClusterTree.hashFile(path) else { return nil }
        hashes[path] = (key, hash)
        return hash
    }
}
