/// Directories deleted on another node that this node keeps because all
/// they hold is what it does not sync (ignored files, special files), by
/// path below PATH and inode, in `.nsync/kept`: after a restart the scan
/// must not announce them as new. Entries are "INODE PATH" ending in NUL,
/// since a name may hold a newline. Written whole (a temporary file, fsync,
/// rename) whenever the set changes, which is rare. Loop thread.
enum KeptDirectories {
    static func path(root: String) -> String { root + "/.nsync/kept" }

    static func load(root: String) -> [String: UInt64] {
        guard let bytes = try? FileDescriptor.readWholeFile(path(root: root)) else { return [:] }
        var kept: [String: UInt64] = [:]
        for entry in bytes.split(separator: 0) {
            guard let space = entry.firstIndex(of: UInt8(ascii: " ")),
                  let inode = UInt64(String(decoding: entry[..<space], as: UTF8.self)) else { continue }
            let relative = String(decoding: entry[(space + 1)...], as: UTF8.self)
            guard IndexPath.violation(in: relative) == nil else { continue }
            kept[relative] = inode
        }
        return kept
    }

    static func save(_ kept: [String: UInt64], root: String) throws {
        guard !kept.isEmpty else {
            _ = try FileDescriptor.removeIfPresent(path(root: root))
            return
        }
        let bytes = Array(kept.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)\0" }.joined().utf8)
        let temporary = path(root: root) + ".new"
        let fd = try FileDescriptor.open(temporary, .writeOnly, options: [.create, .truncate], permissions: 0o600)
        try fd.closeAfter {
            try fd.write(all: bytes)
            try fd.sync()
        }
        try FileSystem.rename(temporary, to: path(root: root))
    }
}
