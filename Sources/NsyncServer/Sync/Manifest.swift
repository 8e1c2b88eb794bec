/// The on-disk form of the reconciler's manifest (`.nsync/manifest`): what
/// this node's disk holds, per path, so a restart knows which version each
/// file was and tells a stale file from a user's edit. Pure codec; any thread.
public enum Manifest {
    static let magic: [UInt8] = Array("NSMF".utf8)
    static let formatVersion: UInt16 = 1

    public static func encode(_ manifest: PathMap<ManifestEntry>) -> [UInt8] {
        var buffer = ByteBuffer(capacity: 64 + manifest.count * 96)
        buffer.writeBytes(magic)
        buffer.writeInteger(formatVersion)
        buffer.writeInteger(UInt32(manifest.count))
        for (path, entry) in manifest {
            buffer.writeShortString(path)
            buffer.writeInteger(entry.version)
            guard let local = entry.local else {
                buffer.writeInteger(UInt8(0))
                continue
            }
            buffer.writeInteger(UInt8(1))
            buffer.writeInteger(local.kind.rawValue)
            buffer.writeInteger(local.size)
            buffer.writeInteger(local.mode)
            buffer.writeInteger(local.mtime)
            buffer.writeInteger(UInt8(local.hash.count))
            buffer.writeBytes(local.hash)
            buffer.writeShortString(local.target)
            buffer.writeInteger(local.inode)
        }
        let checksum = CRC32C.checksum(buffer.bytes)
        buffer.writeInteger(checksum)
        return buffer.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws -> PathMap<ManifestEntry> {
        guard bytes.count >= 4 else { throw WireError.truncated(needed: 4, available: bytes.count) }
        let body = bytes[..<(bytes.count - 4)]
        var tail = ByteBuffer(bytes: Array(bytes[(bytes.count - 4)...]))
        guard CRC32C.checksum(Array(body)) == (try tail.readInteger(as: UInt32.self)) else {
            throw WireError.malformed("manifest checksum mismatch")
        }
        var buffer = ByteBuffer(bytes: Array(body))
        guard try buffer.readBytes(4) == magic else { throw WireError.malformed("not a manifest") }
        guard try buffer.readInteger(as: UInt16.self) == formatVersion else { throw WireError.malformed("manifest version") }
        let count = Int(try buffer.readInteger(as: UInt32.self))
        var manifest = PathMap<ManifestEntry>()
        manifest.reserveCapacity(min(count, 1 << 20))
        for _ in 0..<count {
            let path = try buffer.readShortString()
            let version: UInt64 = try buffer.readInteger()
            guard try buffer.readInteger(as: UInt8.self) == 1 else {
                manifest[path] = ManifestEntry(version: version, local: nil)
                continue
            }
            guard let kind = FileKind(rawValue: try buffer.readInteger()) else { throw WireError.malformed("file kind") }
            let size: UInt64 = try buffer.readInteger()
            let mode: UInt32 = try buffer.readInteger()
            let mtime: Int64 = try buffer.readInteger()
            let hash = try buffer.readBytes(Int(try buffer.readInteger(as: UInt8.self)))
            let target = try buffer.readShortString()
            let inode: UInt64 = try buffer.readInteger()
            manifest[path] = ManifestEntry(version: version, local: LocalFile(
                kind: kind, size: size, mode: mode, mtime: mtime, hash: hash, target: target, inode: inode))
        }
        return manifest
    }
}
