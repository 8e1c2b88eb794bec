import Foundation
import XCTest

/// Reproducible file contents and in-place writes for tests of files that
/// change without being rewritten (appends, edits in place). Any thread.
enum TestBytes {
    /// `count` bytes of a xorshift stream: the same for the same seed.
    static func pseudoRandom(count: Int, seed: UInt64) -> [UInt8] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
    }

    /// Appends `bytes` to the existing file at `path` (O_APPEND, one write).
    static func append(_ bytes: [UInt8], to path: String) throws {
        try writeInPlace(path, O_WRONLY | O_APPEND) { fd in bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count }
    }

    /// Writes `bytes` at `offset` of the existing file at `path`, in place.
    static func overwrite(_ bytes: [UInt8], at offset: Int, in path: String) throws {
        try writeInPlace(path, O_WRONLY) { fd in
            bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) } == bytes.count
        }
    }

    private static func writeInPlace(_ path: String, _ flags: Int32, _ body: (Int32) -> Bool) throws {
        let fd = open(path, flags | O_CLOEXEC)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        guard body(fd) else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }
}
