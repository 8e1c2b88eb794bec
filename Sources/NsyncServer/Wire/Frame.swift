/// One typed message on a peer connection, as it travels after the Hello:
///
///     u32 length (big-endian, counts the type byte + payload) | u8 type | payload
///
/// A plain value; usable from any thread. `FrameDecoder` produces frames from
/// stream bytes; the static `encode` / `header` functions write them.
public struct Frame: Sendable {
    /// Hard limit on `length` (type byte + payload) unless a decoder is given
    /// another: large enough for a batch of index changes or a file chunk, small
    /// enough that a hostile peer cannot make us hold much memory.
    public static let defaultMaxSize = 16 << 20

    /// Bytes before the payload: the u32 length and the type byte.
    public static let headerSize = 5

    /// What the payload means; each channel's codec owns its numbering.
    public var type: UInt8
    /// The payload; its reader index is at the first payload byte. The backing
    /// storage may hold bytes before it (the header), so compare frames with
    /// `==`, which looks at the readable bytes only.
    public var payload: ByteBuffer

    public init(type: UInt8, payload: ByteBuffer = ByteBuffer()) {
        self.type = type
        self.payload = payload
    }

    public init<C: Collection>(type: UInt8, payload bytes: C) where C.Element == UInt8 {
        self.init(type: type, payload: ByteBuffer(bytes))
    }

    /// The 5 header bytes for a payload of `payloadLength` bytes. This is how
    /// file data leaves: the caller sends these, then the payload straight from
    /// its own read buffer, so a chunk is never copied just to be framed.
    public static func header(type: UInt8, payloadLength: Int) -> [UInt8] {
        precondition(payloadLength >= 0 && payloadLength < Int(UInt32.max), "frame payload length out of range")
        let length = UInt32(payloadLength + 1)
        return [
            UInt8(truncatingIfNeeded: length >> 24),
            UInt8(truncatingIfNeeded: length >> 16),
            UInt8(truncatingIfNeeded: length >> 8),
            UInt8(truncatingIfNeeded: length),
            type,
        ]
    }

    /// Appends one frame to `buffer`: the header, then whatever `writePayload`
    /// writes, then the length is patched in place — the payload is written once,
    /// into the buffer that will be sent. Several frames can share one buffer.
    ///
    /// Throws `WireError.tooLarge` (and leaves `buffer` as it was) when the frame
    /// would exceed `maxSize`, the limit the receiving decoder enforces.
    public static func encode(
        type: UInt8,
        into buffer: inout ByteBuffer,
        maxSize: Int = Frame.defaultMaxSize,
        _ writePayload: (inout ByteBuffer) throws -> Void
    ) throws {
        let start = buffer.bytes.count
        buffer.writeInteger(UInt32(0))
        buffer.writeInteger(type)
        do {
            try writePayload(&buffer)
        } catch {
            buffer.truncate(toCount: start)
            throw error
        }
        let length = buffer.bytes.count - start - 4
        guard length <= maxSize else {
            buffer.truncate(toCount: start)
            throw WireError.tooLarge(length, limit: maxSize)
        }
        buffer.setInteger(UInt32(length), at: start)
    }

    /// One frame in a fresh buffer; see `encode(type:into:maxSize:_:)`.
    public static func encode(
        type: UInt8,
        capacity: Int = 256,
        maxSize: Int = Frame.defaultMaxSize,
        _ writePayload: (inout ByteBuffer) throws -> Void
    ) throws -> ByteBuffer {
        var buffer = ByteBuffer(capacity: capacity)
        try encode(type: type, into: &buffer, maxSize: maxSize, writePayload)
        return buffer
    }

    /// This frame's wire bytes (header and payload). For tests and small
    /// messages; hot paths use `encode` or `header`.
    public func encoded() -> [UInt8] {
        var out = Frame.header(type: type, payloadLength: payload.readableBytes)
        out.append(contentsOf: payload.readableView)
        return out
    }
}

extension Frame: Equatable {
    /// Frames are equal when their types and readable payload bytes are.
    public static func == (lhs: Frame, rhs: Frame) -> Bool {
        lhs.type == rhs.type && lhs.payload.readableView.elementsEqual(rhs.payload.readableView)
    }
}
