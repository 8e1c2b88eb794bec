/// The snapshot form of a `FileIndex`: what Raft stores and ships to a node
/// that is too far behind. Big-endian:
///
///     "NSIX" | u16 format (1) | u64 applied index
///     | u16 name count | names (u8 length + bytes), sorted
///     | u32 record count | records, in strictly increasing path byte order:
///         path (u16 length + bytes) | u64 version | u8 kind | u64 size | u32 mode
///         | i64 mtime | u8 hash length + hash | u16 target length + target
///         | u16 origin name number | u16 holder count | holder name numbers, ascending
///
/// Node names are written once in a table and referenced by number: a record
/// then costs its path plus ~50 bytes. The same index always gives the same
/// bytes. Decoding checks every count against the bytes present, every path
/// and name, and the order (which also rules out duplicates).
extension FileIndex {
    static let snapshotMagic: [UInt8] = Array("NSIX".utf8)
    static let snapshotFormat: UInt16 = 1
    /// Smallest encoded record (1-byte path, no hash, no target, no holders).
    private static let minEncodedRecord = 3 + 8 + 1 + 8 + 4 + 8 + 1 + 2 + 2 + 2

    public func snapshotData() -> [UInt8] {
        var nameSet = Set<NodeName>()
        for record in records.values {
            nameSet.insert(record.origin)
            nameSet.formUnion(record.holders)
        }
        // Node names are ASCII (NodeNameRule), so String order is byte order.
        let names = nameSet.sorted()
        precondition(names.count <= Int(UInt16.max), "more than 65535 node names in the index")
        var numbers: [NodeName: UInt16] = [:]
        for (number, name) in names.enumerated() { numbers[name] = UInt16(number) }

        var buffer = ByteBuffer(capacity: 64 + records.count * 96)
        buffer.writeBytes(Self.snapshotMagic)
        buffer.writeInteger(Self.snapshotFormat)
        buffer.writeInteger(appliedIndex)
        buffer.writeInteger(UInt16(names.count))
        for name in names {
            buffer.writeInteger(UInt8(name.utf8.count))
            buffer.writeBytes(name.utf8)
        }
        buffer.writeInteger(UInt32(order.count))
        var holderNumbers: [UInt16] = []
        for key in order {
            let record = records[key]!
            IndexCommand.writePath(record.path, into: &buffer)
            buffer.writeInteger(record.version)
            buffer.writeInteger(record.kind.rawValue)
            buffer.writeInteger(record.size)
            buffer.writeInteger(record.mode)
            buffer.writeInteger(record.mtime)
            buffer.writeInteger(UInt8(record.hash.count))
            buffer.writeBytes(record.hash)
            buffer.writeShortString(record.target)
            buffer.writeInteger(numbers[record.origin]!)
            holderNumbers.removeAll(keepingCapacity: true)
            for holder in record.holders { holderNumbers.append(numbers[holder]!) }
            holderNumbers.sort()
            buffer.writeInteger(UInt16(holderNumbers.count))
            for number in holderNumbers { buffer.writeInteger(number) }
        }
        return buffer.bytes
    }

    /// Rebuilds an index from `snapshotData()` bytes. Throws `WireError`
    /// naming what is wrong; never traps on hostile or corrupt input.
    public init(snapshotData bytes: [UInt8]) throws {
        self.init()
        var buffer = ByteBuffer(bytes: bytes)
        do {
            try load(from: &buffer)
        } catch let error as WireError {
            throw WireError.malformed("index snapshot: \(error)")
        }
    }

    private mutating func load(from buffer: inout ByteBuffer) throws {
        guard try buffer.readBytes(4) == Self.snapshotMagic else {
            throw WireError.malformed("not an index snapshot (bad magic)")
        }
        let format = try buffer.readInteger(as: UInt16.self)
        guard format == Self.snapshotFormat else {
            throw WireError.malformed("format \(format); this node reads format \(Self.snapshotFormat) (upgrade it)")
        }
        appliedIndex = try buffer.readInteger(as: UInt64.self)

        let nameCount = Int(try buffer.readInteger(as: UInt16.self))
        guard nameCount <= buffer.readableBytes / 2 else {
            throw WireError.truncated(needed: nameCount * 2, available: buffer.readableBytes)
        }
        var names: [NodeName] = []
        names.reserveCapacity(nameCount)
        for _ in 0..<nameCount { names.append(try IndexCommand.readNodeName(&buffer)) }
        guard Set(names).count == names.count else { throw WireError.malformed("duplicate node name") }

        let recordCount = Int(try buffer.readInteger(as: UInt32.self))
        guard recordCount <= buffer.readableBytes / Self.minEncodedRecord else {
            throw WireError.truncated(needed: recordCount * Self.minEncodedRecord, available: buffer.readableBytes)
        }
        records.reserveCapacity(recordCount)
        func name(_ number: UInt16) throws -> NodeName {
            guard Int(number) < names.count else { throw WireError.malformed("node name number \(number) out of range") }
            return names[Int(number)]
        }
        for _ in 0..<recordCount {
            let path = try IndexCommand.readPath(&buffer)
            let key = PathKey(path)
            if let last = order.last, !(last < key) {
                throw WireError.malformed("path \(DiagnosticText.quoted(path)) out of order or repeated")
            }
            let version = try buffer.readInteger(as: UInt64.self)
            let rawKind = try buffer.readInteger(as: UInt8.self)
            guard let kind = FileKind(rawValue: rawKind) else { throw WireError.malformed("unknown file kind \(rawKind)") }
            let size = try buffer.readInteger(as: UInt64.self)
            let mode = try buffer.readInteger(as: UInt32.self)
            let mtime = try buffer.readInteger(as: Int64.self)
            let hashLength = Int(try buffer.readInteger(as: UInt8.self))
            guard hashLength == (kind == .file || kind == .deleted ? PutChange.hashSize : 0) || hashLength == 0 else {
                throw WireError.malformed("\(kind) \(DiagnosticText.quoted(path)) with a \(hashLength)-byte hash")
            }
            let hash = try buffer.readBytes(hashLength)
            let targetLength = Int(try buffer.readInteger(as: UInt16.self))
            guard targetLength <= PutChange.maxTargetBytes else {
                throw WireError.tooLarge(targetLength, limit: PutChange.maxTargetBytes)
            }
            let target = try decodeUTF8(try buffer.readSlice(targetLength))
            let origin = try name(try buffer.readInteger(as: UInt16.self))
            let holderCount = Int(try buffer.readInteger(as: UInt16.self))
            guard holderCount <= names.count else { throw WireError.malformed("\(holderCount) holders, \(names.count) names") }
            var holders = Set<NodeName>(minimumCapacity: holderCount)
            for _ in 0..<holderCount { holders.insert(try name(try buffer.readInteger(as: UInt16.self))) }
            store(FileRecord(
                path: path, version: version, kind: kind, size: size, mode: mode, mtime: mtime,
                hash: hash, target: target, origin: origin, holders: shared(holders)), at: key, replacing: nil)
            order.append(key)
        }
        guard buffer.readableBytes == 0 else { throw WireError.malformed("\(buffer.readableBytes) trailing bytes") }
    }
}
