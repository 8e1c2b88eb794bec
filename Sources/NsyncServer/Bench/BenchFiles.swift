import Foundation

/// The files the sync benchmark writes: seeded pseudo-random content (so no
/// layer can profit from repeated bytes), written with plain POSIX calls,
/// and the disk-floor reference. Stateless; any thread.
enum BenchFiles {
    /// `count` bytes of SplitMix64 output for `seed`: the same seed, the same bytes.
    static func content(seed: UInt64, count: Int) -> [UInt8] {
        var state = seed
        var buffer = ByteBuffer(capacity: count + 8)
        while buffer.bytes.count < count {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            buffer.writeInteger(z ^ (z >> 31))
        }
        return Array(buffer.bytes.prefix(count))
    }

    /// Creates or truncates `path` and writes `bytes`, without fsync (as a user's program would).
    static func write(_ bytes: [UInt8], to path: String) throws {
        let fd = try FileDescriptor.open(path, .writeOnly, options: [.create, .truncate], permissions: 0o644)
        try fd.closeAfter { try fd.write(all: bytes) }
    }

    /// Writes `size` bytes of distinct 1 MiB chunks to `path`, fsyncs it,
    /// and returns its SHA-256 (hashed while writing).
    static func writeLarge(size: Int, to path: String, seed: UInt64) throws -> [UInt8] {
        let chunk = 1 << 20
        var block = content(seed: seed, count: chunk)
        let hasher = SHA256()
        let fd = try FileDescriptor.open(path, .writeOnly, options: [.create, .truncate], permissions: 0o644)
        try fd.closeAfter {
            var written = 0
            var number: UInt64 = 0
            while written < size {
                // A different first word per chunk, so no two chunks are alike.
                number += 1
                for i in 0..<8 { block[i] = UInt8(truncatingIfNeeded: (number &* 0x9E37_79B9_7F4A_7C15) >> (8 * UInt64(i))) }
                let n = min(chunk, size - written)
                let piece = block[0..<n]
                try fd.write(all: piece)
                hasher.update(piece)
                written += n
            }
            try fd.sync()
        }
        return hasher.finalize()
    }

    /// The disk floor of a transfer to two receivers: `size` bytes written
    /// to two files at once (two threads, 1 MiB writes, as the receivers
    /// write their chunks), each fsync'd; returns size / elapsed in MB/s.
    static func diskFloor(size: Int, directory: String) throws -> Double {
        try FileDescriptor.makeDirectories(directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let block = content(seed: 0xF100, count: 1 << 20)
        let group = DispatchGroup()
        let failure = FirstError()
        let start = BenchSupport.now()
        for receiver in 0..<2 {
            group.enter()
            Thread {
                defer { group.leave() }
                do {
                    let path = "\(directory)/receiver\(receiver).bin"
                    let fd = try FileDescriptor.open(path, .writeOnly, options: [.create, .truncate], permissions: 0o644)
                    try fd.closeAfter {
                        var written = 0
                        while written < size {
                            let n = min(block.count, size - written)
                            try fd.write(all: block[0..<n])
                            written += n
                        }
                        try fd.sync()
                    }
                } catch {
                    failure.record(error)
                }
            }.start()
        }
        group.wait()
        let seconds = BenchSupport.seconds(since: start)
        if let error = failure.error { throw error }
        return Double(size) / seconds / 1e6
    }
}

/// The first error any of several threads met; guarded by a lock.
final class FirstError: @unchecked Sendable {
    private let lock = NSLock()
    private var first: Error?

    func record(_ error: Error) {
        lock.lock()
        if first == nil { first = error }
        lock.unlock()
    }

    var error: Error? {
        lock.lock()
        defer { lock.unlock() }
        return first
    }
}
