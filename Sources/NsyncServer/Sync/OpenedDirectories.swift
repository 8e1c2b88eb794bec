/// Read-only directories an install made writable for a moment
/// (`LocalDisk.inWritableDirectory`), noted in `.nsync/opened` before each
/// is opened: a node killed before the mode is back puts it back when it
/// starts (`restore`), instead of announcing the passing mode to the
/// cluster as the user's. Emptied after every install batch. Entries are
/// "MODE PATH" (octal; the path below PATH, which may have moved between
/// runs) ending in NUL, since a name may hold a newline. Thread pool
/// (install batches) and start-up.
enum OpenedDirectories {
    static func path(root: String) -> String { root + "/.nsync/opened" }

    /// `directory` is absolute, below `root`.
    static func note(_ directory: String, mode: UInt32, root: String) throws {
        let relative = directory.dropFirst(root.count + 1)
        let fd = try FileDescriptor.open(path(root: root), .writeOnly, options: [.create, .append], permissions: 0o600)
        try fd.closeAfter { try fd.write(all: Array("\(String(mode, radix: 8)) \(relative)\0".utf8)) }
    }

    /// Nothing is open any more (the end of an install batch).
    static func clear(root: String) {
        _ = try? FileDescriptor.removeIfPresent(path(root: root))
    }

    /// Puts back the mode of every noted directory that still shows the
    /// passing one (its mode plus u+wx: anything else was changed since,
    /// by someone else), then clears the note. Returns the directories put back.
    static func restore(root: String) -> [String] {
        guard let bytes = try? FileDescriptor.readWholeFile(path(root: root)) else { return [] }
        var restored: [String] = []
        for entry in bytes.split(separator: 0) {
            guard let space = entry.firstIndex(of: UInt8(ascii: " ")),
                  let mode = UInt32(String(decoding: entry[..<space], as: UTF8.self), radix: 8) else { continue }
            let relative = String(decoding: entry[(space + 1)...], as: UTF8.self)
            guard IndexPath.violation(in: relative) == nil else { continue }
            let directory = root + "/" + relative
            guard let status = try? FileSystem.status(directory), status.kind == .directory,
                  status.mode == mode | 0o300, status.mode != mode,
                  (try? FileSystem.setMode(directory, mode)) != nil else { continue }
            restored.append(directory)
        }
        clear(root: root)
        return restored
    }
}
