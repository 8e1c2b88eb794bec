/// `.nsync/installs`: the fetched files an install batch is about to rename
/// into place, appended and made durable before the renames, and emptied
/// once a saved manifest covers them. Pure codec plus plain file calls; the
/// install job (thread pool) appends, the node reads it at start-up and
/// empties it after a manifest save.
///
/// Why: the manifest is saved about once a second, so after a crash it can
/// be a second behind the disk. A file installed in that second then looks
/// like the user's edit of the version the manifest remembers, and once the
/// cluster moved on it was announced as one — deleted files came back and
/// conflict copies appeared on a node nobody wrote on. With the journal a
/// restart knows which version each such file is: an entry counts only if
/// the file at its path is still that very file (inode, size, mtime, mode),
/// so a rename that never happened or a later edit by the user is left to
/// the usual comparison.
enum InstallJournal {
    /// One file about to be installed: its path, version and the state it
    /// will have on disk (the temporary file's, which a rename keeps).
    struct Entry: Equatable {
        var path: String
        var version: UInt64
        var local: LocalFile
    }

    /// Records of `[u32 length][path, version, size, mode, mtime, hash, inode][u32 CRC32C of both]`.
    static func encode(_ entries: [Entry]) -> [UInt8] {
        var out = ByteBuffer()
        for entry in entries {
            var body = ByteBuffer()
            body.writeShortString(entry.path)
            body.writeInteger(entry.version)
            body.writeInteger(entry.local.size)
            body.writeInteger(entry.local.mode)
            body.writeInteger(entry.local.mtime)
            body.writeInteger(UInt8(entry.local.hash.count))
            body.writeBytes(entry.local.hash)
            body.writeInteger(entry.local.inode)
            var record = ByteBuffer()
            record.writeInteger(UInt32(body.readableBytes))
            record.writeBytes(body.bytes)
            let checksum = CRC32C.checksum(record.bytes)
            out.writeBytes(record.bytes)
            out.writeInteger(checksum)
        }
        return out.bytes
    }

    /// The entries up to the first torn or damaged record (a crash while
    /// appending leaves one at the end; what follows it cannot be trusted).
    static func decode(_ bytes: [UInt8]) -> [Entry] {
        var buffer = ByteBuffer(bytes: bytes)
        var entries: [Entry] = []
        while buffer.readableBytes > 0 {
            guard let length = try? buffer.peekInteger(as: UInt32.self), length <= 1 << 20,
                  buffer.readableBytes >= 8 + Int(length),
                  let record = try? buffer.readBytes(4 + Int(length)),
                  let checksum = try? buffer.readInteger(as: UInt32.self),
                  CRC32C.checksum(record) == checksum else { break }
            var body = ByteBuffer(bytes: Array(record.dropFirst(4)))
            do {
                let path = try body.readShortString()
                let version: UInt64 = try body.readInteger()
                let size: UInt64 = try body.readInteger()
                let mode: UInt32 = try body.readInteger()
                let mtime: Int64 = try body.readInteger()
                let hash = try body.readBytes(Int(try body.readInteger(as: UInt8.self)))
                let inode: UInt64 = try body.readInteger()
                entries.append(Entry(path: path, version: version, local: LocalFile(
                    kind: .file, size: size, mode: mode, mtime: mtime, hash: hash, inode: inode)))
            } catch {
                break
            }
        }
        return entries
    }

    /// Appends `entries` to the journal at `path`; with `sync`, makes them
    /// durable (without, the caller's flush of the file system does).
    static func append(_ entries: [Entry], to path: String, sync: Bool = true) throws {
        guard !entries.isEmpty else { return }
        let fd = try FileDescriptor.open(path, .writeOnly, options: [.create, .append], permissions: 0o600)
        try fd.closeAfter {
            try fd.write(all: encode(entries))
            if sync { try fd.syncData() }
        }
    }

    /// Empties the journal (a saved manifest now covers what it held).
    static func clear(_ path: String) throws {
        let fd = try FileDescriptor.open(path, .writeOnly, options: [.create, .truncate], permissions: 0o600)
        try fd.close()
    }

    /// Brings `manifest` up to date with the journal at `path` under `root`:
    /// each entry whose file is still exactly the one installed becomes that
    /// path's manifest entry. Returns how many did. `gone` gets the entries
    /// whose path holds nothing now: never installed (a crash before the
    /// rename), or installed and then removed or renamed away by the user.
    /// Only the index can tell (the node announced holding each version it
    /// installed).
    static func replay(_ path: String, root: String, onto manifest: inout PathMap<ManifestEntry>, gone: inout [Entry]) -> Int {
        guard let bytes = try? FileDescriptor.readWholeFile(path) else { return 0 }
        var replayed = 0
        for entry in decode(bytes) {
            let status: FileStatus
            do {
                status = try FileSystem.status(root + "/" + entry.path)
            } catch let error as SystemError where error.isNotFound || error.isNotDirectory {
                gone.append(entry)
                continue
            } catch {
                continue
            }
            guard status.kind == .regular,
                  status.inode == entry.local.inode, UInt64(status.size) == entry.local.size,
                  status.modificationTime == entry.local.mtime, status.syncedMode == entry.local.mode else { continue }
            if let known = manifest[entry.path], known.version > entry.version { continue }
            manifest[entry.path] = ManifestEntry(version: entry.version, local: entry.local)
            replayed += 1
        }
        return replayed
    }
}
