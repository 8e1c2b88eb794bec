/// Cuts a byte stream into `Frame`s. Owns the bytes received but not yet
/// returned in a frame: the header being read, the payload being filled, and
/// the frames completed by the last read. Pure: bytes in with `append`,
/// frames out with `next`; no I/O. Used by one connection on the loop thread.
///
/// Each payload byte is copied once, from the caller's read buffer straight
/// into the array the frame hands on (a file chunk goes from the TLS
/// plaintext buffer to the chunk writer with no staging copy in between).
///
/// It trusts a length only so far: a payload of up to `reserveLimit` bytes is
/// reserved whole when its header arrives (a 256 KiB file chunk then fills one
/// array without regrowing); a longer one grows with what actually arrived
/// (doubling, capped at the frame), so a peer that announces 16 MiB and
/// stalls costs us at most `reserveLimit` bytes, not sixteen megabytes.
///
/// After an error (zero or oversized length) the stream cannot be re-synchronised:
/// the decoder drops its bytes and, once the frames completed before the error
/// are taken, every later `next()` throws the same error, so the owner closes
/// the connection.
public struct FrameDecoder {
    /// The largest `length` (type byte + payload) this decoder accepts.
    public let maxFrameSize: Int
    /// The largest payload reserved on the word of its header alone.
    public let reserveLimit: Int

    /// Header bytes of the frame being read (up to `Frame.headerSize`).
    private var header: [UInt8] = []
    /// The frame whose header is complete and whose payload is being filled.
    private var body: (type: UInt8, length: Int, bytes: [UInt8])?
    /// Frames completed and not yet returned; `ready[readyStart...]` are pending.
    private var ready: [Frame] = []
    private var readyStart = 0
    private var failure: WireError?

    public init(maxFrameSize: Int = Frame.defaultMaxSize, reserveLimit: Int = 1 << 20) {
        precondition(maxFrameSize >= 1 && maxFrameSize < Int(UInt32.max), "maxFrameSize out of range")
        precondition(reserveLimit >= 0, "reserveLimit out of range")
        self.maxFrameSize = maxFrameSize
        self.reserveLimit = reserveLimit
    }

    /// Bytes received and not yet returned in a frame.
    public var bufferedByteCount: Int {
        var count = header.count
        if let body { count += Frame.headerSize + body.bytes.count }
        for frame in ready[readyStart...] {
            count += Frame.headerSize + frame.payload.readableBytes
        }
        return count
    }

    /// Bytes of storage currently reserved (what the decoder costs in memory).
    public var reservedCapacity: Int {
        var capacity = header.capacity + (body?.bytes.capacity ?? 0) + ready.capacity * MemoryLayout<Frame>.stride
        for frame in ready[readyStart...] {
            capacity += frame.payload.bytes.capacity
        }
        return capacity
    }

    /// Adds bytes just read from the stream. Call `next()` until it returns nil
    /// afterwards: the memory bound (the frames of one read, one partial frame,
    /// and the rest of its payload up to `reserveLimit`) assumes it.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        var rest = bytes[...]
        while !rest.isEmpty && failure == nil {
            let used = consume(UnsafeRawBufferPointer(rebasing: rest))
            rest = rest.dropFirst(used)
        }
    }

    /// Adds bytes from any collection (tests, small reads).
    public mutating func append<C: Collection>(contentsOf bytes: C) where C.Element == UInt8 {
        guard !bytes.isEmpty else { return }
        Array(bytes).withUnsafeBytes { append($0) }
    }

    /// The next complete frame, or nil when more bytes are needed.
    /// Throws `WireError.malformed` for a zero length and `WireError.tooLarge`
    /// for a length above `maxFrameSize` — as soon as the 4 length bytes are
    /// in, after the frames completed before them.
    public mutating func next() throws -> Frame? {
        if readyStart < ready.count {
            let frame = ready[readyStart]
            ready[readyStart] = Frame(type: 0)  // the caller owns its payload alone
            readyStart += 1
            if readyStart == ready.count {
                // A read of thousands of tiny frames leaves no lasting queue.
                ready.removeAll(keepingCapacity: ready.capacity <= 64)
                readyStart = 0
            }
            return frame
        }
        if let failure { throw failure }
        return nil
    }

    /// Takes what it can of `bytes` for the frame being read; returns how many
    /// bytes it used (at least one).
    private mutating func consume(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard var frame = body else { return consumeHeader(bytes) }
        body = nil  // `frame.bytes` is uniquely referenced while it grows
        let count = min(bytes.count, frame.length - frame.bytes.count)
        let needed = frame.bytes.count + count
        if needed > frame.bytes.capacity {
            // Doubling keeps byte-at-a-time feeding linear; the cap keeps a slow
            // large frame from reserving more than it announced.
            frame.bytes.reserveCapacity(max(needed, min(frame.bytes.capacity * 2, frame.length)))
        }
        frame.bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[..<count]))
        if frame.bytes.count == frame.length {
            ready.append(Frame(type: frame.type, payload: ByteBuffer(bytes: frame.bytes)))
        } else {
            body = frame
        }
        return count
    }

    private mutating func consumeHeader(_ bytes: UnsafeRawBufferPointer) -> Int {
        if header.isEmpty, bytes.count >= Frame.headerSize {
            // A whole frame in this read (small frames, mostly): straight out.
            let length = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
            if length > 0, length <= maxFrameSize, bytes.count >= 4 + length {
                let payload = Array(UnsafeRawBufferPointer(rebasing: bytes[Frame.headerSize..<(4 + length)]))
                ready.append(Frame(type: bytes[4], payload: ByteBuffer(bytes: payload)))
                return 4 + length
            }
        }
        let count = min(bytes.count, Frame.headerSize - header.count)
        if header.isEmpty { header.reserveCapacity(Frame.headerSize) }
        header.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[..<count]))
        guard header.count >= 4 else { return count }
        let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        guard length > 0 else {
            fail(.malformed("frame with length 0 (a frame has at least a type byte)"))
            return count
        }
        guard length <= maxFrameSize else {
            fail(.tooLarge(length, limit: maxFrameSize))
            return count
        }
        guard header.count == Frame.headerSize else { return count }
        let type = header[4]
        header.removeAll(keepingCapacity: true)
        let payloadLength = length - 1
        var payload: [UInt8] = []
        if payloadLength == 0 {
            ready.append(Frame(type: type, payload: ByteBuffer(bytes: payload)))
            return count
        }
        // Beyond the limit, only what this read already holds is reserved.
        let arrived = min(payloadLength, bytes.count - count)
        payload.reserveCapacity(payloadLength <= reserveLimit ? payloadLength : arrived)
        body = (type, payloadLength, payload)
        return count
    }

    private mutating func fail(_ error: WireError) {
        failure = error
        header = []
        body = nil
    }
}
