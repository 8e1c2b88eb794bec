import Foundation
@testable import NsyncServer
import XCTest

/// A fresh directory under the system temp dir for one storage test,
/// removed when the value is released.
final class StorageScratchDirectory {
    let path: String

    init(_ label: String) throws {
        let base = NSTemporaryDirectory() + "nsync-storage-\(label)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        path = base
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Where the storage lives, as under `<PATH>/.nsync/raft`.
    var raft: String { path + "/.nsync/raft" }

    func file(_ name: String) -> String { raft + "/" + name }

    func names() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: raft).sorted() }

    func segmentNames() throws -> [String] { try names().filter { $0.hasPrefix("log-") } }

    func size(_ name: String) throws -> Int64 {
        let fd = try FileDescriptor.open(file(name), .readOnly)
        return try fd.closeAfter { try fd.size() }
    }

    /// Inverts one byte: what a bad sector or a stray write does.
    func flipByte(_ name: String, at offset: Int64) throws {
        let fd = try FileDescriptor.open(file(name), .readWrite)
        try fd.closeAfter {
            let byte = try fd.read(upToCount: 1, at: offset)
            XCTAssertEqual(byte.count, 1, "offset \(offset) is inside \(name)")
            try fd.write(all: [~byte[0]], at: offset)
        }
    }

    /// Cuts a file short: what a crash in the middle of a write leaves.
    func truncate(_ name: String, to size: Int64) throws {
        let fd = try FileDescriptor.open(file(name), .readWrite)
        try fd.closeAfter { try fd.truncate(to: size) }
    }

    func open(_ options: RaftStorage.Options = RaftStorage.Options()) throws -> (RaftStorage, RaftStorage.RecoveredState) {
        try RaftStorage.open(directory: raft, options: options)
    }
}

enum StorageFixture {
    /// Bytes of a record holding `dataSize` bytes of data (length + crc + term + index + synced + kind + data).
    static func recordSize(_ dataSize: Int) -> Int64 { Int64(8 + 25 + dataSize) }
    static let headerSize: Int64 = 24

    /// `count` entries from `index` on, each with `size` bytes derived from
    /// its index and term, so any mix-up shows in a comparison.
    static func entries(from index: UInt64, count: Int, term: UInt64 = 1, size: Int = 100) -> [RaftEntry] {
        (0..<UInt64(count)).map { k in
            let i = index + k
            let data = (0..<size).map { UInt8(truncatingIfNeeded: i &* 31 &+ term &* 7 &+ UInt64($0)) }
            return RaftEntry(term: term, index: i, kind: i % 10 == 0 ? .noop : .command, data: data)
        }
    }
}

/// SplitMix64 for the seeded storage tests: a failing run is replayed with
/// NSYNC_STORAGE_SEED=<printed seed>.
struct StorageTestRandom: RandomNumberGenerator {
    private var source: RaftRandom
    init(seed: UInt64) { source = RaftRandom(seed: seed) }
    mutating func next() -> UInt64 { source.next() }

    static func seed(_ test: String) -> UInt64 {
        let seed = ProcessInfo.processInfo.environment["NSYNC_STORAGE_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 0...UInt64.max)
        print("\(test): seed \(seed) (replay with NSYNC_STORAGE_SEED=\(seed))")
        return seed
    }
}
