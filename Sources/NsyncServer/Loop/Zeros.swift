#if canImport(Glibc)
import Glibc
#endif

/// Runs of zero bytes: found in what is sent (a sparse file's holes go as
/// `.zeros`), left as holes where downloads are written (`ChunkWriter`),
/// and made up where `.zeros` are hashed. Immutable; any thread.
enum Zeros {
    /// A MiB of zeros, to hash (or write) a run of them a slice at a time.
    static let chunk = [UInt8](repeating: 0, count: 1 << 20)

    /// `length` zeros from `offset`, as slices of `chunk`.
    static func slices(from offset: UInt64, length: UInt64) -> [(offset: UInt64, bytes: ArraySlice<UInt8>)] {
        stride(from: offset, to: offset + length, by: chunk.count).map {
            ($0, chunk[..<Int(min(UInt64(chunk.count), offset + length - $0))])
        }
    }

    /// Whether `bytes` are all zero (empty: true).
    static func are(_ bytes: ArraySlice<UInt8>) -> Bool {
        bytes.withUnsafeBytes { $0.isEmpty || are($0.baseAddress!, count: $0.count) }
    }

    /// Whether the `count` bytes at `bytes` are all zero. Random bytes
    /// differ within the first few: one `memcmp` of a few bytes.
    static func are(_ bytes: UnsafeRawPointer, count: Int) -> Bool {
        chunk.withUnsafeBytes { zeros in
            var at = 0
            while at < count {
                let n = min(zeros.count, count - at)
                if memcmp(bytes + at, zeros.baseAddress!, n) != 0 { return false }
                at += n
            }
            return true
        }
    }
}
