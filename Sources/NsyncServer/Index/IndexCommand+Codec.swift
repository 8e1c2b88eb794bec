/// Binary form of an `IndexCommand`, the bytes of a Raft entry (big-endian):
///
///     u8 format (1) | u8 origin length | origin | u32 change count | changes
///     put:    u8 1 | path | u8 kind | u64 size | u32 mode | i64 mtime
///                  | u8 hash length | hash | u16 target length | target | u64 base
///     hold:   u8 2 | path | u64 version
///     forget: u8 3 | path | u64 version
///     path:   u16 length | UTF-8 bytes
///
/// Decoding checks every length against its limit and the bytes that are
/// really there before allocating, validates paths and names, and refuses
/// trailing bytes. Pure; usable from any thread.
extension IndexCommand {
    static let formatVersion: UInt8 = 1

    /// The first byte of an encoded change.
    private enum Tag: UInt8 {
        case put = 1
        case hold = 2
        case forget = 3
    }

    /// Smallest encoded change (hold/forget of a 1-byte path), used to refuse
    /// a count the remaining bytes cannot possibly hold.
    private static let minEncodedChange = 1 + 2 + 1 + 8

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(Self.formatVersion)
        let name = Array(origin.utf8)
        precondition(name.count <= Int(UInt8.max), "origin name too long")
        buffer.writeInteger(UInt8(name.count))
        buffer.writeBytes(name)
        buffer.writeInteger(UInt32(changes.count))
        for change in changes {
            switch change {
            case let .put(put):
                buffer.writeInteger(Tag.put.rawValue)
                Self.writePath(put.path, into: &buffer)
                buffer.writeInteger(put.kind.rawValue)
                buffer.writeInteger(put.size)
                buffer.writeInteger(put.mode)
                buffer.writeInteger(put.mtime)
                precondition(put.hash.count <= Int(UInt8.max), "hash too long")
                buffer.writeInteger(UInt8(put.hash.count))
                buffer.writeBytes(put.hash)
                buffer.writeShortString(put.target)
                buffer.writeInteger(put.baseVersion)
            case let .hold(path, version):
                buffer.writeInteger(Tag.hold.rawValue)
                Self.writePath(path, into: &buffer)
                buffer.writeInteger(version)
            case let .forget(path, version):
                buffer.writeInteger(Tag.forget.rawValue)
                Self.writePath(path, into: &buffer)
                buffer.writeInteger(version)
            }
        }
    }

    /// The entry bytes for this command.
    public func encoded() -> [UInt8] {
        var buffer = ByteBuffer(capacity: 16 + changes.count * 64)
        encode(into: &buffer)
        return buffer.bytes
    }

    /// Decodes a whole command; the buffer must hold exactly one.
    public init(decoding bytes: [UInt8]) throws {
        var buffer = ByteBuffer(bytes: bytes)
        self = try IndexCommand.decode(&buffer)
        guard buffer.readableBytes == 0 else {
            throw WireError.malformed("index command: \(buffer.readableBytes) trailing bytes")
        }
    }

    /// Reads one command from the buffer's reader index.
    public static func decode(_ buffer: inout ByteBuffer) throws -> IndexCommand {
        let format = try buffer.readInteger(as: UInt8.self)
        guard format == formatVersion else {
            throw WireError.malformed("index command format \(format); this node reads format \(formatVersion) (upgrade it)")
        }
        let origin = try readNodeName(&buffer)
        let count = Int(try buffer.readInteger(as: UInt32.self))
        guard count <= maxChanges else { throw WireError.tooLarge(count, limit: maxChanges) }
        guard count <= buffer.readableBytes / minEncodedChange else {
            throw WireError.truncated(needed: count * minEncodedChange, available: buffer.readableBytes)
        }
        var changes: [IndexChange] = []
        changes.reserveCapacity(count)
        for _ in 0..<count {
            let rawTag = try buffer.readInteger(as: UInt8.self)
            guard let tag = Tag(rawValue: rawTag) else { throw WireError.unknownType(rawTag) }
            let path = try readPath(&buffer)
            switch tag {
            case .put:
                let rawKind = try buffer.readInteger(as: UInt8.self)
                guard let kind = FileKind(rawValue: rawKind) else {
                    throw WireError.malformed("unknown file kind \(rawKind)")
                }
                let size = try buffer.readInteger(as: UInt64.self)
                let mode = try buffer.readInteger(as: UInt32.self)
                let mtime = try buffer.readInteger(as: Int64.self)
                let hashLength = Int(try buffer.readInteger(as: UInt8.self))
                guard hashLength == 0 || hashLength == PutChange.hashSize else {
                    throw WireError.malformed("content hash of \(hashLength) bytes")
                }
                let hash = try buffer.readBytes(hashLength)
                let targetLength = Int(try buffer.readInteger(as: UInt16.self))
                guard targetLength <= PutChange.maxTargetBytes else {
                    throw WireError.tooLarge(targetLength, limit: PutChange.maxTargetBytes)
                }
                let target = try decodeUTF8(try buffer.readSlice(targetLength))
                let base = try buffer.readInteger(as: UInt64.self)
                changes.append(.put(PutChange(
                    path: path, kind: kind, size: size, mode: mode, mtime: mtime,
                    hash: hash, target: target, baseVersion: base)))
            case .hold:
                changes.append(.hold(path: path, version: try buffer.readInteger(as: UInt64.self)))
            case .forget:
                changes.append(.forget(path: path, version: try buffer.readInteger(as: UInt64.self)))
            }
        }
        return IndexCommand(origin: origin, changes: changes)
    }

    static func writePath(_ path: String, into buffer: inout ByteBuffer) {
        buffer.writeShortString(path)
    }

    /// A u16-length path, refused if longer than `IndexPath.maxBytes`, not
    /// UTF-8, or not a valid index key.
    static func readPath(_ buffer: inout ByteBuffer) throws -> String {
        let length = Int(try buffer.readInteger(as: UInt16.self))
        guard length <= IndexPath.maxBytes else { throw WireError.tooLarge(length, limit: IndexPath.maxBytes) }
        let path = try decodeUTF8(try buffer.readSlice(length))
        if let error = IndexPath.violation(in: path) { throw WireError.malformed(error.description) }
        return path
    }

    /// A u8-length node name that follows `NodeNameRule`.
    static func readNodeName(_ buffer: inout ByteBuffer) throws -> NodeName {
        let length = Int(try buffer.readInteger(as: UInt8.self))
        let name = try decodeUTF8(try buffer.readSlice(length))
        if let why = NodeNameRule.violation(in: name) { throw WireError.malformed(why) }
        return name
    }
}
