/// Directories deleted on another node that this node keeps because all
/// they hold is what it does not sync (ignored files, special files), by
/// path below PATH, with the inode and birth time that tell them from a
/// directory made later under that name, in `.nsync/kept`: after a restart
/// the scan must not announce them as new. Entries are "INODE BIRTH PATH"
/// ending in NUL, since a name may hold a newline. Written whole (a
/// temporary file, fsync, rename) whenever the set changes, which is rare.
/// Loop thread.
enum KeptDirectories {
    /// Which directory: inode number, birth time (ns, 0 if the file system keeps none).
    struct Identity: Equatable {
        var inode: UInt64
        var birth: Int64
    }

    static func path(root: String) -> String { root + "/.nsync/kept" }

    static func load(root: String) -> [String: Identity] {
        guard let bytes = try? FileDescriptor.readWholeFile(path(root: root)) else { return [:] }
        var kept: [String: Identity] = [:]
        for entry in bytes.split(separator: 0) {
            let fields = entry.split(separator: UInt8(ascii: " "), maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3, let inode = UInt64(String(decoding: fields[0], as: UTF8.self)),
                  let birth = Int64(String(decoding: fields[1], as: UTF8.self)) else { continue }
            let relative = String(decoding: fields[2], as: UTF8.self)
            guard IndexPath.violation(in: relative) == nil else { continue }
            kept[relative] = Identity(inode: inode, birth: birth)
        }
        return kept
    }

    static func save(_ kept: [String: Identity], root: String) throws {
        guard !kept.isEmpty else {
            _ = try FileDescriptor.removeIfPresent(path(root: root))
            return
        }
        let lines = kept.sorted { $0.key < $1.key }.map { "\($0.value.inode) \($0.value.birth) \($0.key)\0" }
        let temporary = path(root: root) + ".new"
        let fd = try FileDescriptor.open(temporary, .writeOnly, options: [.create, .truncate], permissions: 0o600)
        try fd.closeAfter {
            try fd.write(all: Array(lines.joined().utf8))
            try fd.sync()
        }
        try FileSystem.rename(temporary, to: path(root: root))
    }
}
