/// Ciphertext produced by OpenSSL, handed to the socket as `IOBuffer`s.
///
/// Why not a memory BIO: draining one costs a malloc and a copy per flush.
/// Here each record OpenSSL writes is copied once, straight into a pooled
/// 264 KiB block, and a large flush hands whole blocks to the stream, which
/// writes from them without copying; they come back through `recycle` after
/// the write completed, so a bulk transfer allocates nothing per record. A
/// small flush (a heartbeat, a handshake message) is copied into a buffer of
/// its own size instead, so it does not pin a block while it waits in the
/// socket queue. Owned by one `TLSEngine`; loop thread.
final class TLSOutput {
    /// A 256 KiB plaintext write is 16 records of 16,406 bytes (262,496):
    /// 264 KiB holds them, so such a write leaves as one buffer and one
    /// socket write, instead of a full block plus a 352-byte straggler.
    static let blockSize = 264 * 1024
    /// Flushes below this are copied out and the block reused at once.
    static let smallFlushLimit = 16 * 1024
    /// Free blocks kept for reuse (about 1 MiB); more are freed.
    static let poolLimit = 4

    private var current: IOBuffer
    /// Full blocks not yet taken, oldest first.
    private var sealed: [IOBuffer] = []
    private var free: [IOBuffer] = []
    /// Bytes appended and not yet taken.
    private(set) var pendingCount = 0

    init() {
        current = IOBuffer(capacity: Self.blockSize)
    }

    /// Copies ciphertext in; the BIO calls this for every record OpenSSL writes.
    func append(_ bytes: UnsafeRawPointer, count: Int) {
        var source = bytes
        var remaining = count
        pendingCount += count
        while remaining > 0 {
            if current.freeCapacity == 0 {
                sealed.append(current)
                current = free.popLast() ?? IOBuffer(capacity: Self.blockSize)
            }
            let n = min(current.freeCapacity, remaining)
            current.append(UnsafeRawBufferPointer(start: source, count: n))
            source += n
            remaining -= n
        }
    }

    /// Hands out everything appended since the last call, in order. The
    /// caller writes each buffer and then gives it back with `recycle`.
    func take(_ body: (IOBuffer) -> Void) {
        guard pendingCount > 0 else { return }
        pendingCount = 0
        for block in sealed {
            body(block)
        }
        sealed.removeAll(keepingCapacity: true)
        guard current.count > 0 else { return }
        if current.count < Self.smallFlushLimit {
            let copy = current.withUnsafeBytes { IOBuffer(capacity: $0.count).appending($0) }
            current.count = 0
            body(copy)
        } else {
            let block = current
            current = free.popLast() ?? IOBuffer(capacity: Self.blockSize)
            body(block)
        }
    }

    /// Takes a buffer back after its write completed; blocks go to the pool.
    func recycle(_ buffer: IOBuffer) {
        guard buffer.capacity == Self.blockSize, buffer !== current, free.count < Self.poolLimit else { return }
        buffer.count = 0
        free.append(buffer)
    }
}

private extension IOBuffer {
    func appending(_ bytes: UnsafeRawBufferPointer) -> IOBuffer {
        append(bytes)
        return self
    }
}
