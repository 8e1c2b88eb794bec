/// The byte layout of a log segment file, and the pure scan that recovery
/// runs over one. No I/O; any thread.
///
///     segment = header record*
///     header  = "NSYNCLOG" | version u32 | firstIndex u64 | crc32c u32 (of the 20 bytes before)
///     record  = length u32 | crc32c u32 | payload
///     payload = term u64 | index u64 | syncedIndex u64 | kind u8 | data
///
/// Integers are big-endian. A record's CRC covers its length field and its
/// payload, so a damaged length is caught as well as damaged data. Records
/// in a segment have consecutive indexes starting at the header's (which is
/// also in the file name), so every record can be checked for its place.
///
/// `syncedIndex` is the last index that was durable (a `sync()` had
/// returned for it) when the record was written. It costs 8 bytes a record
/// and is what lets recovery tell the two kinds of damage apart exactly: a
/// bad record at index d followed by a valid record whose syncedIndex >= d
/// was durable before the crash (the node may have acknowledged it), so the
/// damage is corruption and the node must not start; if no later record
/// vouches for d, d was still in flight — possibly with later pages of the
/// same write reaching the disk before it — and it is a torn tail to cut.
enum LogSegmentFormat {
    static let magic: [UInt8] = Array("NSYNCLOG".utf8)
    static let version: UInt32 = 1
    static let headerSize = 24
    /// length + crc.
    static let recordHeaderSize = 8
    /// term + index + syncedIndex + kind.
    static let payloadFixedSize = 25
    /// Sanity bound on a record's payload: a length above it is damage, not data.
    static let maxPayloadSize = 1 << 30

    static func fileName(firstIndex: UInt64) -> String {
        let digits = String(firstIndex)
        return "log-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    /// The first index a segment file name states, or nil if it is not a segment name.
    static func firstIndex(fromFileName name: String) -> UInt64? {
        guard name.hasPrefix("log-"), name.utf8.count == 24 else { return nil }
        return UInt64(name.dropFirst(4))
    }

    static func appendHeader(firstIndex: UInt64, to buffer: inout ByteBuffer) {
        let start = buffer.bytes.count
        buffer.writeBytes(magic)
        buffer.writeInteger(version)
        buffer.writeInteger(firstIndex)
        buffer.writeInteger(CRC32C.checksum(buffer.bytes, in: start..<start + 20))
    }

    /// Appends one record; returns its size in bytes.
    @discardableResult
    static func appendRecord(_ entry: RaftEntry, syncedIndex: UInt64, to buffer: inout ByteBuffer) -> Int {
        let start = buffer.bytes.count
        let payloadSize = payloadFixedSize + entry.data.count
        buffer.writeInteger(UInt32(payloadSize))
        buffer.writeInteger(UInt32(0))  // CRC, set below once the payload is in place
        buffer.writeInteger(entry.term)
        buffer.writeInteger(entry.index)
        buffer.writeInteger(syncedIndex)
        buffer.writeInteger(entry.kind.rawValue)
        buffer.writeBytes(entry.data)
        let crc = CRC32C.update(
            CRC32C.checksum(buffer.bytes, in: start..<start + 4),
            buffer.bytes, in: start + recordHeaderSize..<buffer.bytes.count)
        buffer.setInteger(crc, at: start + 4)
        return buffer.bytes.count - start
    }

    static func recordSize(_ entry: RaftEntry) -> Int {
        recordHeaderSize + payloadFixedSize + entry.data.count
    }

    // MARK: decoding

    /// What a header check found.
    enum HeaderCheck: Equatable {
        case valid(firstIndex: UInt64)
        case damaged(String)
        case newerVersion(UInt32)
    }

    static func checkHeader(_ bytes: [UInt8]) -> HeaderCheck {
        guard bytes.count >= headerSize else { return .damaged("header cut short at \(bytes.count) bytes") }
        guard Array(bytes[0..<8]) == magic else { return .damaged("not a log segment (bad magic)") }
        guard bytes.loadBigEndian(UInt32.self, at: 20) == CRC32C.checksum(bytes, in: 0..<20) else {
            return .damaged("bad header checksum")
        }
        let version = bytes.loadBigEndian(UInt32.self, at: 8)
        guard version <= Self.version else { return .newerVersion(version) }
        return .valid(firstIndex: bytes.loadBigEndian(UInt64.self, at: 12))
    }

    /// What sits at one record position.
    enum RecordCheck: Equatable {
        /// A whole, checksummed record for the expected index; the next starts at `end`.
        case valid(end: Int)
        /// Not a valid record; `why` is for the operator.
        case invalid(String)
    }

    static func checkRecord(_ bytes: [UInt8], at offset: Int, expectedIndex: UInt64) -> RecordCheck {
        let available = bytes.count - offset
        guard available >= recordHeaderSize + payloadFixedSize else {
            return .invalid("partial record: \(available) bytes left")
        }
        let length = Int(bytes.loadBigEndian(UInt32.self, at: offset))
        guard length >= payloadFixedSize, length <= maxPayloadSize else {
            return .invalid("implausible record length \(length)")
        }
        let end = offset + recordHeaderSize + length
        guard end <= bytes.count else {
            return .invalid("partial record: length \(length) runs past the end of the file")
        }
        let crc = CRC32C.update(
            CRC32C.checksum(bytes, in: offset..<offset + 4), bytes, in: offset + recordHeaderSize..<end)
        guard crc == bytes.loadBigEndian(UInt32.self, at: offset + 4) else { return .invalid("bad checksum") }
        let index = bytes.loadBigEndian(UInt64.self, at: offset + recordHeaderSize + 8)
        guard index == expectedIndex else {
            return .invalid("record holds index \(index) where \(expectedIndex) belongs")
        }
        guard RaftEntry.Kind(rawValue: bytes[offset + recordHeaderSize + 24]) != nil else {
            return .invalid("unknown entry kind \(bytes[offset + recordHeaderSize + 24])")
        }
        return .valid(end: end)
    }

    /// Decodes the record at `offset`, which `checkRecord` has already validated.
    static func decodeEntry(_ bytes: [UInt8], at offset: Int) -> RaftEntry {
        let length = Int(bytes.loadBigEndian(UInt32.self, at: offset))
        let payload = offset + recordHeaderSize
        return RaftEntry(
            term: bytes.loadBigEndian(UInt64.self, at: payload),
            index: bytes.loadBigEndian(UInt64.self, at: payload + 8),
            kind: RaftEntry.Kind(rawValue: bytes[payload + 24]) ?? .command,
            data: Array(bytes[payload + payloadFixedSize..<payload + length]))
    }

    /// The valid prefix of a segment, and the first damage if any.
    struct Scan {
        var firstIndex: UInt64
        /// File offset of each valid record, in index order.
        var offsets: [UInt32] = []
        /// Bytes of header plus valid records.
        var validEnd: Int
        /// Where the valid prefix stops early, and why.
        var damage: (offset: Int, reason: String)?
        var lastIndex: UInt64 { firstIndex + UInt64(offsets.count) - 1 }
    }

    /// Walks the records of a segment whose name says it starts at `firstIndex`.
    /// Damage stops the walk; the caller decides whether it is a torn tail.
    static func scan(_ bytes: [UInt8], firstIndex: UInt64) -> Scan {
        var result = Scan(firstIndex: firstIndex, validEnd: 0)
        var offset = headerSize
        var expected = firstIndex
        while offset < bytes.count {
            switch checkRecord(bytes, at: offset, expectedIndex: expected) {
            case let .valid(end):
                result.offsets.append(UInt32(offset))
                offset = end
                expected += 1
            case let .invalid(reason):
                result.validEnd = offset
                result.damage = (offset, reason)
                return result
            }
        }
        result.validEnd = offset
        return result
    }

    /// The offset of a valid record after `offset` that was written when
    /// `damagedIndex` was already durable (see the type's comment), or nil.
    /// Candidates are found by trying every byte position; the length and
    /// index fields reject almost all of them before any CRC is computed.
    static func recordVouchingFor(_ damagedIndex: UInt64, in bytes: [UInt8], after offset: Int) -> Int? {
        let minimum = recordHeaderSize + payloadFixedSize
        // At most this many records fit after the damage, which bounds the index.
        let maxIndex = damagedIndex + UInt64((bytes.count - offset) / minimum)
        var position = offset + 1
        while position + minimum <= bytes.count {
            defer { position += 1 }
            let length = Int(bytes.loadBigEndian(UInt32.self, at: position))
            guard length >= payloadFixedSize, position + recordHeaderSize + length <= bytes.count else { continue }
            let index = bytes.loadBigEndian(UInt64.self, at: position + recordHeaderSize + 8)
            guard index > damagedIndex, index <= maxIndex else { continue }
            let synced = bytes.loadBigEndian(UInt64.self, at: position + recordHeaderSize + 16)
            guard synced >= damagedIndex, synced < index else { continue }
            if case .valid = checkRecord(bytes, at: position, expectedIndex: index) { return position }
        }
        return nil
    }
}

extension Array where Element == UInt8 {
    /// The big-endian integer at `offset`; the caller has checked the bounds.
    func loadBigEndian<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        var value: T = 0
        for i in 0..<MemoryLayout<T>.size { value = value << 8 | T(self[offset + i]) }
        return value
    }
}
