/// A fixed-capacity byte buffer at a stable address, for I/O that must not
/// copy: the thread pool reads file bytes straight into it, and a stream
/// writes from it, keeping it alive until the write callback. `count` bytes
/// (from the start) are valid.
///
/// Not thread-safe: owned by one thread at a time; while a file request or a
/// write uses it, leave it alone until that request's completion runs.
public final class IOBuffer {
    public let capacity: Int
    let base: UnsafeMutableRawPointer

    /// Valid bytes, from the start; `0...capacity`.
    public var count: Int {
        didSet { precondition(count >= 0 && count <= capacity, "IOBuffer.count \(count) outside 0...\(capacity)") }
    }

    public init(capacity: Int) {
        precondition(capacity >= 0)
        self.capacity = capacity
        base = .allocate(byteCount: max(capacity, 1), alignment: 64)
        count = 0
    }

    /// A buffer holding a copy of `bytes`.
    public convenience init(_ bytes: [UInt8]) {
        self.init(capacity: bytes.count)
        append(bytes)
    }

    deinit { base.deallocate() }

    /// Room after the valid bytes.
    public var freeCapacity: Int { capacity - count }

    /// The valid bytes, as a copy.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    public subscript(index: Int) -> UInt8 {
        precondition(index >= 0 && index < count, "IOBuffer index \(index) outside 0..<\(count)")
        return base.load(fromByteOffset: index, as: UInt8.self)
    }

    /// Copies `bytes` after the valid bytes; they must fit.
    public func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        precondition(bytes.count <= freeCapacity, "IOBuffer.append: \(bytes.count) bytes, \(freeCapacity) free")
        let target = UnsafeMutableRawBufferPointer(start: base + count, count: bytes.count)
        target.copyBytes(from: bytes)
        count += bytes.count
    }

    /// Copies `bytes` after the valid bytes; they must fit.
    public func append(_ bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count <= freeCapacity, "IOBuffer.append: \(bytes.count) bytes, \(freeCapacity) free")
        if let source = bytes.baseAddress { (base + count).copyMemory(from: source, byteCount: bytes.count) }
        count += bytes.count
    }

    /// The valid bytes, for reading.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// The whole capacity, for filling in place (then set `count`).
    public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(start: base, count: capacity))
    }
}
