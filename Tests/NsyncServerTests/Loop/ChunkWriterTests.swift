import Foundation
@testable import NsyncServer
import XCTest

/// ChunkWriter against real files in the temporary directory (a disk file
/// system on the machines we run on, which allows O_DIRECT).
final class ChunkWriterTests: XCTestCase {
    private var root = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "nsync-chunks-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileDescriptor.makeDirectories(root)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: root)
    }

    private typealias Chunk = (offset: UInt64, bytes: ArraySlice<UInt8>)

    /// `bytes` cut into `size`-byte chunks from `from` on, in order.
    private func chunks(of bytes: [UInt8], size: Int, from: Int = 0) -> [Chunk] {
        stride(from: from, to: bytes.count, by: size).map { start in
            (UInt64(start), bytes[start..<min(start + size, bytes.count)])
        }
    }

    private func content(_ count: Int, seed: UInt64 = 7) -> [UInt8] {
        BenchFiles.content(seed: seed, count: count)
    }

    func testADownloadInJobsOfAlignedChunksThenAnUnalignedTailWritesEveryByte() throws {
        let bytes = content(5 * (256 << 10) + 1_234)
        let all = chunks(of: bytes, size: 256 << 10)
        let fd = try ChunkWriter.create(root + "/large.part", direct: true)
        try fd.closeAfter {
            XCTAssertTrue(ChunkWriter.isDirect(fd), "the temporary directory's file system takes O_DIRECT")
            var handed: [UInt64] = []
            // As the fetcher's jobs come: what arrived meanwhile, several chunks at once.
            try ChunkWriter.write(Array(all[0..<1]), to: fd) { handed.append(UInt64($0.startIndex)) }
            try ChunkWriter.write(Array(all[1..<5]), to: fd) { handed.append(UInt64($0.startIndex)) }
            XCTAssertTrue(ChunkWriter.isDirect(fd), "aligned chunks keep the descriptor direct")
            try ChunkWriter.write(Array(all[5...]), to: fd) { handed.append(UInt64($0.startIndex)) }
            XCTAssertFalse(ChunkWriter.isDirect(fd), "the unaligned last bytes went through the page cache")
            XCTAssertEqual(handed, all.map(\.offset), "each chunk handed on once, in order")
            try fd.sync()
        }
        XCTAssertEqual(try FileDescriptor.readWholeFile(root + "/large.part"), bytes)
    }

    /// Bytes the file system allocated for `path`.
    private func allocated(_ path: String) -> Int {
        var info = stat()
        XCTAssertEqual(stat(path, &info), 0)
        return Int(info.st_blocks) * 512
    }

    /// A sparse file's runs of zero pages are not written (direct and
    /// buffered): holes, which read as zeros and take no room. After every
    /// job the file is as long as its last chunk says (a relay reads up to
    /// there), also when the job ended in a hole on a page boundary.
    func testZeroPagesPastTheEndBecomeHolesThatReadAsZeros() throws {
        let mib = 1 << 20
        var bytes = content(mib, seed: 3)
        bytes += [UInt8](repeating: 0, count: 2 * mib)
        bytes += content(mib / 2, seed: 4)
        bytes += [UInt8](repeating: 0, count: mib)  // ends in zeros, on a page boundary
        for direct in [true, false] {
            let path = root + "/sparse-\(direct).part"
            let all = chunks(of: bytes, size: 256 << 10)
            let fd = try ChunkWriter.create(path, direct: direct)
            try fd.closeAfter {
                XCTAssertEqual(ChunkWriter.isDirect(fd), direct)
                var handed = 0
                for job in stride(from: 0, to: all.count, by: 3) {
                    let taken = Array(all[job..<min(job + 3, all.count)])
                    try ChunkWriter.write(taken, to: fd) { handed += $0.count }
                    let end = taken.last!.offset + UInt64(taken.last!.bytes.count)
                    XCTAssertEqual(try fd.size(), Int64(end), "direct: \(direct), after the job ending at \(end)")
                }
                XCTAssertEqual(handed, bytes.count, "every byte handed on (hashed), zeros too")
                try fd.sync()
            }
            XCTAssertEqual(try FileDescriptor.readWholeFile(path), bytes, "direct: \(direct)")
            XCTAssertLessThan(allocated(path), bytes.count - 2 * mib, "direct: \(direct): the zeros take no room")
        }
    }

    /// Lone zero pages (every other page, as in a file-system image) are
    /// written: holes there would cut every direct write into pieces. A
    /// run of `minimumHole` is left out.
    func testOnlyRunsOfZeroPagesOfTheMinimumHoleAreLeftOut() throws {
        let page = ChunkWriter.alignment
        var bytes = content(64 << 10, seed: 5)
        for i in 0..<64 { bytes += i % 2 == 0 ? [UInt8](repeating: 0, count: page) : content(page, seed: UInt64(10 + i)) }
        bytes += [UInt8](repeating: 0, count: ChunkWriter.minimumHole)
        bytes += content(64 << 10, seed: 6)
        for direct in [true, false] {
            let path = root + "/scattered-\(direct).part"
            let fd = try ChunkWriter.create(path, direct: direct)
            try fd.closeAfter {
                try ChunkWriter.write(chunks(of: bytes, size: 256 << 10), to: fd) { _ in }
                try fd.sync()
            }
            XCTAssertEqual(try FileDescriptor.readWholeFile(path), bytes, "direct: \(direct)")
            XCTAssertGreaterThanOrEqual(allocated(path), bytes.count - ChunkWriter.minimumHole, "direct: \(direct)")
            XCTAssertLessThan(allocated(path), bytes.count, "direct: \(direct): the run of \(ChunkWriter.minimumHole) is a hole")
        }
    }

    /// Zeros over bytes already in the file (a resumed download writing
    /// again) are written: a hole there would keep the old bytes.
    func testZerosOverBytesAlreadyInTheFileAreWritten() throws {
        for direct in [true, false] {
            let path = root + "/rewrite-\(direct).part"
            let fd = try ChunkWriter.create(path, direct: direct)
            try fd.closeAfter {
                try ChunkWriter.write([(0, content(1 << 20, seed: 5)[...])], to: fd) { _ in }
                try ChunkWriter.write([(0, [UInt8](repeating: 0, count: 1 << 20)[...])], to: fd) { _ in }
                try fd.sync()
            }
            XCTAssertEqual(try FileDescriptor.readWholeFile(path), [UInt8](repeating: 0, count: 1 << 20), "direct: \(direct)")
        }
    }

    func testAChunkLargerThanTheGatheringBufferIsWrittenWhole() throws {
        let bytes = content(3 * ChunkWriter.bufferSize + 4_096)
        let fd = try ChunkWriter.create(root + "/big-chunk.part", direct: true)
        try fd.closeAfter {
            try ChunkWriter.write([(0, bytes[...])], to: fd) { _ in }
            XCTAssertTrue(ChunkWriter.isDirect(fd))
        }
        XCTAssertEqual(try FileDescriptor.readWholeFile(root + "/big-chunk.part"), bytes)
    }

    func testChunksWithAGapOrAnUnalignedStartStillLandAtTheirOffsets() throws {
        let bytes = content(64 << 10)
        let fd = try ChunkWriter.create(root + "/gaps.part", direct: true)
        try fd.closeAfter {
            // A gap between aligned chunks: two direct writes, a hole between.
            try ChunkWriter.write([(0, bytes[0..<8_192]), (16_384, bytes[16_384..<24_576])], to: fd) { _ in }
            XCTAssertTrue(ChunkWriter.isDirect(fd))
            // An unaligned start (as a resume of an odd-sized .part would be).
            try ChunkWriter.write([(8_192 + 100, bytes[8_292..<16_384])], to: fd) { _ in }
            XCTAssertFalse(ChunkWriter.isDirect(fd))
            try ChunkWriter.write([(8_192, bytes[8_192..<8_292]), (24_576, bytes[24_576...])], to: fd) { _ in }
        }
        XCTAssertEqual(try FileDescriptor.readWholeFile(root + "/gaps.part"), bytes)
    }

    func testABufferedDescriptorWritesThroughThePageCache() throws {
        let bytes = content(300_001)
        let fd = try ChunkWriter.create(root + "/small.part", direct: false)
        try fd.closeAfter {
            XCTAssertFalse(ChunkWriter.isDirect(fd))
            var handed = 0
            try ChunkWriter.write(chunks(of: bytes, size: 65_536), to: fd) { handed += $0.count }
            XCTAssertEqual(handed, bytes.count)
        }
        XCTAssertEqual(try FileDescriptor.readWholeFile(root + "/small.part"), bytes)
    }

    /// tmpfs takes O_DIRECT (Linux 6.6 on) but has no device to go around
    /// to: a download there is written straight through, not gathered first.
    func testADownloadUnderDevShmIsNotDirect() throws {
        let mounts = try String(contentsOfFile: "/proc/mounts", encoding: .utf8)
        XCTAssertTrue(mounts.contains(" /dev/shm tmpfs "), "/dev/shm is a tmpfs")
        let path = "/dev/shm/nsync-chunks-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).part"
        defer { unlink(path) }
        let bytes = content(3 << 20)
        let fd = try ChunkWriter.create(path, direct: true)
        try fd.closeAfter {
            XCTAssertFalse(ChunkWriter.isDirect(fd))
            try ChunkWriter.write(chunks(of: bytes, size: 262_144), to: fd) { _ in }
        }
        XCTAssertEqual(try FileDescriptor.readWholeFile(path), bytes)
        // The temporary directory (a disk) still goes around the page cache.
        let disk = try ChunkWriter.create(root + "/disk.part", direct: true)
        try disk.closeAfter { XCTAssertTrue(ChunkWriter.isDirect(disk)) }
    }

    func testCreateTruncatesAnEarlierFileAndRefusesAMissingDirectory() throws {
        let path = root + "/again.part"
        try BenchFiles.write(content(10_000), to: path)
        let fd = try ChunkWriter.create(path, direct: true)
        try fd.closeAfter { XCTAssertEqual(try fd.size(), 0) }
        XCTAssertThrowsError(try ChunkWriter.create(root + "/missing/x.part", direct: true)) { error in
            XCTAssertEqual((error as? SystemError)?.errno, ENOENT, "\(error)")
        }
    }
}
