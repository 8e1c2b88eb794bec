/// Cuts a byte stream into `Frame`s. Owns the bytes received but not yet
/// framed (at most one partial frame plus the last read). Pure: bytes in with
/// `append`, frames out with `next`; no I/O. Used by one connection on the
/// loop thread.
///
/// It never trusts a length before the bytes arrive: a header announcing
/// 16 MiB makes it reserve nothing; storage grows with what actually arrived
/// (doubling, capped at one maximal frame), so a peer that sends a header and
/// stalls costs us five bytes, not sixteen megabytes.
///
/// After an error (zero or oversized length) the stream cannot be re-synchronised:
/// the decoder drops its bytes and every later `next()` throws the same error,
/// so the owner closes the connection.
public struct FrameDecoder {
    /// The largest `length` (type byte + payload) this decoder accepts.
    public let maxFrameSize: Int

    /// Received bytes; `storage[start...]` are not yet framed.
    private var storage: [UInt8] = []
    private var start = 0
    private var failure: WireError?

    public init(maxFrameSize: Int = Frame.defaultMaxSize) {
        precondition(maxFrameSize >= 1 && maxFrameSize < Int(UInt32.max), "maxFrameSize out of range")
        self.maxFrameSize = maxFrameSize
    }

    /// Bytes received and not yet returned in a frame.
    public var bufferedByteCount: Int { storage.count - start }

    /// Bytes of storage currently reserved (what the decoder costs in memory).
    public var reservedCapacity: Int { storage.capacity }

    /// Adds bytes just read from the stream. Call `next()` until it returns nil
    /// afterwards: the memory bound (one frame + one read) assumes it.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty, failure == nil else { return }
        makeRoom(for: bytes.count)
        storage.append(contentsOf: bytes)
    }

    /// Adds bytes from any collection (tests, small reads).
    public mutating func append<C: Collection>(contentsOf bytes: C) where C.Element == UInt8 {
        guard !bytes.isEmpty, failure == nil else { return }
        makeRoom(for: bytes.count)
        storage.append(contentsOf: bytes)
    }

    /// The next complete frame, or nil when more bytes are needed.
    /// Throws `WireError.malformed` for a zero length and `WireError.tooLarge`
    /// for a length above `maxFrameSize` — as soon as the 4 length bytes are in.
    public mutating func next() throws -> Frame? {
        if let failure { throw failure }
        let available = storage.count - start
        guard available >= 4 else { return nil }
        let length = Int(storage[start]) << 24 | Int(storage[start + 1]) << 16
            | Int(storage[start + 2]) << 8 | Int(storage[start + 3])
        guard length > 0 else {
            throw fail(.malformed("frame with length 0 (a frame has at least a type byte)"))
        }
        guard length <= maxFrameSize else {
            throw fail(.tooLarge(length, limit: maxFrameSize))
        }
        guard available >= 4 + length else { return nil }
        let type = storage[start + 4]
        let payload = ByteBuffer(bytes: Array(storage[(start + Frame.headerSize)..<(start + 4 + length)]))
        start += 4 + length
        if start == storage.count {
            storage.removeAll(keepingCapacity: true)
            start = 0
        }
        return Frame(type: type, payload: payload)
    }

    private mutating func fail(_ error: WireError) -> WireError {
        failure = error
        storage = []
        start = 0
        return error
    }

    /// Makes sure `incoming` more bytes fit, compacting consumed bytes first and
    /// growing only as far as needed (see the type's comment for why).
    private mutating func makeRoom(for incoming: Int) {
        if start > 0 && start == storage.count {
            storage.removeAll(keepingCapacity: true)
            start = 0
        }
        guard storage.count + incoming > storage.capacity else { return }
        if start > 0 {
            // The kept bytes are at most one partial frame: cheap next to a regrowth.
            storage.removeSubrange(0..<start)
            start = 0
        }
        let needed = storage.count + incoming
        guard needed > storage.capacity else { return }
        // Doubling keeps byte-at-a-time feeding linear; the cap keeps a slow
        // large frame from reserving more than the limit allows.
        let target = max(needed, min(storage.capacity * 2, maxFrameSize + Frame.headerSize))
        storage.reserveCapacity(target)
    }
}
