/// A growable byte buffer with a reader index: writes append, reads consume
/// from the front. Every read is bounds-checked and throws `WireError` instead
/// of trapping, so decoders built on it cannot crash on hostile input.
/// A value type; not shared between threads while mutated.
public struct ByteBuffer: Equatable, Sendable {
    /// The bytes written so far; `readerIndex..<bytes.count` is unread.
    public private(set) var bytes: [UInt8]
    /// Offset of the next byte to read.
    public private(set) var readerIndex: Int

    public init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
        readerIndex = 0
    }

    public init(bytes: [UInt8]) {
        self.bytes = bytes
        readerIndex = 0
    }

    public init<S: Sequence>(_ sequence: S) where S.Element == UInt8 {
        self.init(bytes: Array(sequence))
    }

    /// Number of bytes not yet read.
    public var readableBytes: Int { bytes.count - readerIndex }

    /// The unread bytes, without consuming them.
    public var readableView: ArraySlice<UInt8> { bytes[readerIndex...] }

    // MARK: writing

    public mutating func writeInteger<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func writeBytes<C: Collection>(_ data: C) where C.Element == UInt8 {
        bytes.append(contentsOf: data)
    }

    public mutating func writeBytes(_ raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: raw)
    }

    /// Writes a UTF-8 string preceded by its byte length as a UInt16.
    /// Strings longer than 65535 bytes are a programming error at the caller.
    public mutating func writeShortString(_ string: String) {
        let utf8 = Array(string.utf8)
        precondition(utf8.count <= Int(UInt16.max), "short string too long")
        writeInteger(UInt16(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    /// Writes a byte blob preceded by its length as a UInt32.
    public mutating func writeLongBytes<C: Collection>(_ data: C) where C.Element == UInt8 {
        writeInteger(UInt32(data.count))
        bytes.append(contentsOf: data)
    }

    /// Overwrites an integer at an absolute offset already written (length prefixes).
    public mutating func setInteger<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        let size = MemoryLayout<T>.size
        precondition(offset >= 0 && offset + size <= bytes.count, "setInteger out of bounds")
        withUnsafeBytes(of: value.bigEndian) { raw in
            for i in 0..<size { bytes[offset + i] = raw[i] }
        }
    }

    public mutating func reserveCapacity(_ n: Int) { bytes.reserveCapacity(n) }

    /// Drops written bytes from offset `count` on, undoing a partial write (an
    /// encoder that failed half-way); the reader index is pulled back if needed.
    public mutating func truncate(toCount count: Int) {
        precondition(count >= 0 && count <= bytes.count, "truncate out of bounds")
        bytes.removeSubrange(count...)
        readerIndex = min(readerIndex, count)
    }

    // MARK: reading

    public mutating func readInteger<T: FixedWidthInteger>(as type: T.Type = T.self) throws -> T {
        let value: T = try peekInteger(at: 0)
        readerIndex += MemoryLayout<T>.size
        return value
    }

    /// Reads an integer `offset` bytes past the reader index without consuming it.
    public func peekInteger<T: FixedWidthInteger>(at offset: Int = 0, as type: T.Type = T.self) throws -> T {
        let size = MemoryLayout<T>.size
        guard offset >= 0, readableBytes - offset >= size else {
            throw WireError.truncated(needed: size, available: max(0, readableBytes - offset))
        }
        var value: T = 0
        let start = readerIndex + offset
        bytes.withUnsafeBytes { raw in
            withUnsafeMutableBytes(of: &value) { dst in
                dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[start..<start + size]))
            }
        }
        return T(bigEndian: value)
    }

    public mutating func readBytes(_ count: Int) throws -> [UInt8] {
        Array(try readSlice(count))
    }

    /// Reads `count` bytes as a slice of the underlying storage (no copy).
    public mutating func readSlice(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0 else { throw WireError.malformed("negative length") }
        guard readableBytes >= count else {
            throw WireError.truncated(needed: count, available: readableBytes)
        }
        let slice = bytes[readerIndex..<readerIndex + count]
        readerIndex += count
        return slice
    }

    public mutating func readShortString() throws -> String {
        let length = Int(try readInteger(as: UInt16.self))
        return try decodeUTF8(try readSlice(length))
    }

    /// Reads a UInt32-length-prefixed blob, refusing lengths above `limit`.
    public mutating func readLongBytes(limit: Int) throws -> [UInt8] {
        let length = Int(try readInteger(as: UInt32.self))
        guard length <= limit else { throw WireError.tooLarge(length, limit: limit) }
        return try readBytes(length)
    }

    public mutating func moveReaderIndex(forwardBy count: Int) throws {
        _ = try readSlice(count)
    }

    /// Drops consumed bytes so the storage does not grow without bound.
    public mutating func discardReadBytes() {
        guard readerIndex > 0 else { return }
        if readerIndex == bytes.count {
            bytes.removeAll(keepingCapacity: true)
        } else {
            bytes.removeSubrange(0..<readerIndex)
        }
        readerIndex = 0
    }

    public mutating func clear() {
        bytes.removeAll(keepingCapacity: true)
        readerIndex = 0
    }
}

/// Decodes UTF-8 strictly: invalid sequences are an error, not U+FFFD.
func decodeUTF8<C: Collection>(_ bytes: C) throws -> String where C.Element == UInt8 {
    guard let s = String(validating: bytes, as: UTF8.self) else {
        throw WireError.malformed("invalid UTF-8")
    }
    return s
}

/// Why bytes from the network (or disk) could not be decoded.
public enum WireError: Error, Equatable, CustomStringConvertible, Sendable {
    case truncated(needed: Int, available: Int)
    case tooLarge(Int, limit: Int)
    case malformed(String)
    case unknownType(UInt8)

    public var description: String {
        switch self {
        case let .truncated(needed, available): "truncated: needed \(needed) bytes, \(available) available"
        case let .tooLarge(size, limit): "length \(size) exceeds limit \(limit)"
        case let .malformed(why): "malformed: \(why)"
        case let .unknownType(t): "unknown message type \(t)"
        }
    }
}
