/// A region of ciphertext ready for the socket: a view into a `TLSOutput`
/// block that stays valid until the chunk is given back with
/// `TLSOutput.release(_:)` (after the socket write completed). Loop thread.
struct TLSOutboundChunk {
    let block: TLSOutputBlock
    let offset: Int
    let count: Int

    var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: block.base + offset, count: count)
    }
}

/// One large, reused ciphertext buffer. OpenSSL appends records at `end`;
/// `taken` marks what was already handed out as chunks; `outstanding` counts
/// chunks not yet released. Owned by one `TLSOutput`; loop thread.
final class TLSOutputBlock {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    var end = 0
    var taken = 0
    var outstanding = 0

    init(capacity: Int) {
        self.capacity = capacity
        base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
    }

    deinit {
        base.deallocate()
    }
}

/// Ciphertext produced by OpenSSL, waiting for and during socket writes.
///
/// Why not a memory BIO: draining one costs a malloc and a copy per flush.
/// Here OpenSSL's record bytes are copied once, straight into a pooled block,
/// and the socket writes from that block; small writes share a block (a
/// heartbeat does not pin 128 KiB), and blocks are recycled, not freed, so a
/// bulk transfer allocates nothing per record. Owned by one `TLSEngine`;
/// loop thread.
final class TLSOutput {
    /// 128 KiB: a 256 KiB plaintext write becomes about three chunks, and an
    /// idle connection holds one block.
    static let blockSize = 128 * 1024
    /// Free blocks kept for reuse; more are freed.
    static let poolLimit = 4

    private var current: TLSOutputBlock
    /// Full blocks with bytes not yet taken, oldest first.
    private var sealed: [TLSOutputBlock] = []
    private var free: [TLSOutputBlock] = []
    /// Bytes appended but not yet taken.
    private(set) var pendingCount = 0

    init() {
        current = TLSOutputBlock(capacity: Self.blockSize)
    }

    /// Copies ciphertext in; called by the BIO for every record OpenSSL writes.
    func append(_ bytes: UnsafeRawPointer, count: Int) {
        var source = bytes
        var remaining = count
        pendingCount += count
        while remaining > 0 {
            var space = current.capacity - current.end
            if space == 0 {
                sealed.append(current)
                current = free.popLast() ?? TLSOutputBlock(capacity: Self.blockSize)
                space = current.capacity
            }
            let n = min(space, remaining)
            (current.base + current.end).copyMemory(from: source, byteCount: n)
            current.end += n
            source += n
            remaining -= n
        }
    }

    /// Hands out everything appended since the last call, in order, as chunks
    /// the caller writes to the socket and then releases.
    func take(_ body: (TLSOutboundChunk) -> Void) {
        guard pendingCount > 0 else { return }
        pendingCount = 0
        for block in sealed {
            body(takeRest(of: block))
        }
        sealed.removeAll(keepingCapacity: true)
        if current.end > current.taken {
            body(takeRest(of: current))
        }
    }

    private func takeRest(of block: TLSOutputBlock) -> TLSOutboundChunk {
        let chunk = TLSOutboundChunk(block: block, offset: block.taken, count: block.end - block.taken)
        block.taken = block.end
        block.outstanding += 1
        return chunk
    }

    /// Gives a chunk back once the socket is done with its bytes.
    func release(_ chunk: TLSOutboundChunk) {
        let block = chunk.block
        block.outstanding -= 1
        guard block.outstanding == 0, block.taken == block.end else { return }
        // Fully written and not sealed (a sealed block has bytes not yet taken).
        block.end = 0
        block.taken = 0
        if block !== current, free.count < Self.poolLimit {
            free.append(block)
        }
    }
}
