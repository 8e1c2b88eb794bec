#if canImport(Glibc)
import Glibc
#endif

/// Runs of zero bytes: found in what is sent (a sparse file's holes go as
/// `.zeros`), left as holes where downloads are written (`ChunkWriter`),
/// and made up where `.zeros` are hashed. Immutable; any thread.
enum Zeros {
    /// A MiB of zeros, to hash (or write) a run of them a slice at a time.
    static let chunk = [UInt8](repeating: 0, count: 1 << 20)

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
