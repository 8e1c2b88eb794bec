/// The snapshot on disk: one file, `snapshot`, replaced atomically by
/// writing `snapshot.tmp`, fsyncing it, renaming it over the old one and
/// fsyncing the directory, so a crash leaves either the old snapshot or the
/// new one, never a mix. Used by `RaftStorage`, so by one thread at a time.
///
///     snapshot = "NSYNCSNP" | version u32 | index u64 | term u64
///                | member count u32 | members (u16 length + UTF-8 each)
///                | data length u64 | data | crc32c u32 (of everything before)
enum SnapshotFile {
    static let name = "snapshot"
    static let temporaryName = "snapshot.tmp"
    static let magic: [UInt8] = Array("NSYNCSNP".utf8)
    static let version: UInt32 = 1

    /// Writes `snapshot` durably in place of the current one.
    static func write(_ snapshot: RaftSnapshot, directory: String) throws {
        var header = ByteBuffer(capacity: 64)
        header.writeBytes(magic)
        header.writeInteger(version)
        header.writeInteger(snapshot.metadata.index)
        header.writeInteger(snapshot.metadata.term)
        header.writeInteger(UInt32(snapshot.metadata.members.count))
        for member in snapshot.metadata.members { header.writeShortString(member) }
        header.writeInteger(UInt64(snapshot.data.count))
        var trailer = ByteBuffer(capacity: 4)
        trailer.writeInteger(CRC32C.update(CRC32C.checksum(header.bytes), snapshot.data))

        let temporary = directory + "/" + temporaryName
        let fd = try FileDescriptor.open(temporary, .writeOnly, options: [.create, .truncate], permissions: 0o600)
        try fd.closeAfter {
            // Three writes rather than one joined buffer: the data may be large.
            try fd.write(all: header.bytes, at: 0)
            try fd.write(all: snapshot.data, at: Int64(header.bytes.count))
            try fd.write(all: trailer.bytes, at: Int64(header.bytes.count + snapshot.data.count))
            try fd.sync()
        }
        try FileDescriptor.rename(temporary, to: directory + "/" + name)
        try FileDescriptor.syncDirectory(directory)
    }

    /// Reads and verifies the snapshot; nil when there is none.
    static func read(directory: String) throws -> RaftSnapshot? {
        let path = directory + "/" + name
        guard FileDescriptor.exists(path) else { return nil }
        let fd = try FileDescriptor.open(path, .readOnly)
        let bytes = try fd.closeAfter { try fd.readAll() }
        func corrupt(_ offset: Int, _ reason: String) -> RaftStorageError {
            .corrupt(directory: directory, file: name, offset: Int64(offset), reason: reason)
        }
        guard bytes.count >= magic.count + 4 + 4, Array(bytes[0..<magic.count]) == magic else {
            throw corrupt(0, "not a snapshot file (bad magic or cut short)")
        }
        let covered = bytes.count - 4
        guard bytes.loadBigEndian(UInt32.self, at: covered) == CRC32C.checksum(bytes, in: 0..<covered) else {
            // The file was fsync'd before it was renamed into place, so this is not a torn write.
            throw corrupt(0, "bad checksum over \(bytes.count) bytes")
        }
        var buffer = ByteBuffer(bytes: bytes)
        do {
            _ = try buffer.readBytes(magic.count)
            let version = try buffer.readInteger(as: UInt32.self)
            guard version <= Self.version else {
                throw RaftStorageError.unsupportedVersion(file: path, version: version)
            }
            let index = try buffer.readInteger(as: UInt64.self)
            let term = try buffer.readInteger(as: UInt64.self)
            let count = try buffer.readInteger(as: UInt32.self)
            guard Int(count) <= buffer.readableBytes / 2 else { throw corrupt(buffer.readerIndex, "member count \(count)") }
            var members: [NodeName] = []
            for _ in 0..<count { members.append(try buffer.readShortString()) }
            let length = try buffer.readInteger(as: UInt64.self)
            guard length == UInt64(buffer.readableBytes - 4) else {
                throw corrupt(buffer.readerIndex, "data length \(length) but \(buffer.readableBytes - 4) bytes follow")
            }
            let data = try buffer.readBytes(Int(length))
            return RaftSnapshot(metadata: SnapshotMetadata(index: index, term: term, members: members), data: data)
        } catch let error as RaftStorageError {
            throw error
        } catch {
            throw corrupt(buffer.readerIndex, "\(error)")
        }
    }
}
