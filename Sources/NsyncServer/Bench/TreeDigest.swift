/// What a synced directory holds, its `.nsync/` left out: relative path ->
/// kind, size and SHA-256 of the content. Two nodes have converged when their
/// digests are equal; sizes alone would not say so. A value; any thread.
struct TreeDigest: Equatable {
    enum Entry: Equatable, CustomStringConvertible {
        case directory
        case file(size: Int64, sha256: [UInt8])
        case symlink(target: String)
        case other

        var description: String {
            switch self {
            case .directory: "directory"
            case let .file(size, sha256): "file of \(size) bytes, sha256 \(SHA256.hex(sha256).prefix(12))"
            case let .symlink(target): "symlink to \(target)"
            case .other: "special file"
            }
        }
    }

    var entries: [String: Entry] = [:]

    init(entries: [String: Entry] = [:]) {
        self.entries = entries
    }

    /// Reads and hashes everything under `root/subtree` (or all of `root`).
    /// Paths are relative to `root`; a missing subtree is an empty digest.
    init(root: String, subtree: String? = nil) throws {
        let hasher = SHA256()
        var pending: [String] = []
        if let subtree {
            guard FileDescriptor.exists(root + "/" + subtree) else { return }
            entries[subtree] = .directory
            pending.append(subtree)
        } else {
            pending.append("")
        }
        while let relative = pending.popLast() {
            let directory = relative.isEmpty ? root : root + "/" + relative
            for entry in try FileSystem.listDirectoryEntries(directory) {
                guard let name = entry.name, let status = entry.status else { continue }
                if relative.isEmpty && name == ".nsync" { continue }
                let path = relative.isEmpty ? name : relative + "/" + name
                switch status.kind {
                case .directory:
                    entries[path] = .directory
                    pending.append(path)
                case .regular:
                    let hash = try FileSystem.hashFile(root + "/" + path, into: hasher)
                    entries[path] = .file(size: hash.bytesRead, sha256: hash.digest)
                case .symlink:
                    entries[path] = .symlink(target: try FileSystem.readLink(root + "/" + path))
                case .other:
                    entries[path] = .other
                }
            }
        }
    }

    /// Up to `limit` lines saying how `self` (a node's tree) differs from `expected`.
    func differences(from expected: TreeDigest, limit: Int = 5) -> [String] {
        var lines: [String] = []
        var count = 0
        for path in Set(entries.keys).union(expected.entries.keys).sorted() {
            let have = entries[path]
            let want = expected.entries[path]
            guard have != want else { continue }
            count += 1
            if lines.count < limit {
                lines.append("\(path): \(have.map(\.description) ?? "missing"), expected \(want.map(\.description) ?? "nothing")")
            }
        }
        if count > limit { lines.append("... \(count) differences in all") }
        return lines
    }
}
