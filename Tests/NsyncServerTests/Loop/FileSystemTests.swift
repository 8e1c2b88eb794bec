import Foundation
import XCTest
@testable import NsyncServer

final class FileSystemTests: XCTestCase {
    func testStatusReportsKindSizePermissionBitsAndNanosecondMtime() throws {
        let dir = try SyncScratchDirectory("fs")
        try dir.write("f", "hello", mode: 0o640)
        chmod(dir.url("f"), 0o4640) // setuid bit survives the & 0o7777
        try dir.mkdir("d")
        try FileSystem.createSymlink(at: dir.url("l"), target: "f")
        mkfifo(dir.url("p"), 0o600)
        try FileSystem.setModificationTime(dir.url("f"), 1_700_000_000_123_456_789)

        let file = try FileSystem.status(dir.url("f"))
        XCTAssertEqual(file.kind, .regular)
        XCTAssertEqual(file.size, 5)
        XCTAssertEqual(file.mode, 0o4640)
        XCTAssertEqual(file.modificationTime, 1_700_000_000_123_456_789)
        XCTAssertNotEqual(file.inode, 0)
        XCTAssertEqual(try FileSystem.status(dir.url("d")).kind, .directory)
        XCTAssertEqual(try FileSystem.status(dir.url("l")).kind, .symlink)
        XCTAssertEqual(try FileSystem.statusFollowingLinks(dir.url("l")).kind, .regular)
        XCTAssertEqual(try FileSystem.status(dir.url("p")).kind, .other)
        XCTAssertThrowsError(try FileSystem.status(dir.url("missing"))) {
            XCTAssertTrue(($0 as? SystemError)?.isNotFound ?? false)
            XCTAssertTrue("\($0)".contains("missing"), "the error names the path: \($0)")
        }
    }

    /// ext4 and tmpfs keep times past 2262, the end of Int64 nanoseconds
    /// (`touch -d 2300-01-01`), and ext4 before 1677: such a time reads as
    /// the nearest end of the range, in a stat, a listing and a look, and
    /// does not trap (it stopped the daemon at every start-up scan).
    func testTimesBeyondInt64NanosecondsReadAsTheEndsOfTheRange() throws {
        let dir = try SyncScratchDirectory("fs-far")
        try dir.write("future", "2300\n")
        try dir.write("past", "1600\n")
        for (name, seconds) in [("future", 10_413_792_000), ("past", -11_676_096_000)] {
            var times = [timespec(tv_sec: seconds, tv_nsec: 0), timespec(tv_sec: seconds, tv_nsec: 0)]
            XCTAssertEqual(utimensat(AT_FDCWD, dir.url(name), &times, 0), 0, name)
        }
        let future = try FileSystem.status(dir.url("future")).modificationTime
        XCTAssertEqual(future, .max)
        let past = try FileSystem.status(dir.url("past")).modificationTime
        XCTAssertTrue(past == .min || past == -2_147_483_648_000_000_000,
                      "read as the start of the range, or clamped to 1901 by the file system (ext4): \(past)")
        let listed = try DirectoryScanner.scan(root: dir.path, ignore: .defaults).entries
        XCTAssertEqual(listed.first { $0.path == "future" }?.modificationTime, .max)
        guard case .found(let looked?) = LocalDisk.look(root: dir.path, path: "future", known: nil) else {
            return XCTFail("the look failed")
        }
        XCTAssertEqual(looked.mtime, .max)
        XCTAssertFalse(looked.isRacy)
        XCTAssertEqual(FileSystem.nanoseconds(-10_000_000_000_000, 0), .min)
        XCTAssertEqual(FileSystem.nanoseconds(9_223_372_036, 854_775_807), .max)
        XCTAssertEqual(FileSystem.nanoseconds(9_223_372_036, 854_775_808), .max)
        XCTAssertEqual(FileSystem.nanoseconds(1, 5), 1_000_000_005)
    }

    func testListDirectorySkipsDotEntriesAndEntriesCarryLstat() throws {
        let dir = try SyncScratchDirectory("fs")
        try dir.write("a", "1")
        try dir.mkdir("b")
        try FileSystem.createSymlink(at: dir.url("c"), target: "/nonexistent/target")
        XCTAssertEqual(try FileSystem.listDirectory(dir.path).sorted(), ["a", "b", "c"])
        let entries = try FileSystem.listDirectoryEntries(dir.path).sorted { $0.rawName.lexicographicallyPrecedes($1.rawName) }
        XCTAssertEqual(entries.map(\.status?.kind), [.regular, .directory, .symlink])
        XCTAssertEqual(entries[0].status?.size, 1)
        XCTAssertEqual(try FileSystem.listDirectory(dir.url("b")), [])
    }

    func testInvalidUTF8NamesAreKeptAsRawBytesWithoutAName() throws {
        let dir = try SyncScratchDirectory("fs")
        let raw: [UInt8] = [0x62, 0x61, 0x64, 0xff] // "bad\xff"
        let fd = (dir.path + "/").utf8CString.withUnsafeBufferPointer { prefix -> Int32 in
            var full = Array(prefix.dropLast()).map { UInt8(bitPattern: $0) } + raw + [0]
            return full.withUnsafeMutableBufferPointer {
                $0.baseAddress!.withMemoryRebound(to: CChar.self, capacity: $0.count) { open($0, O_CREAT | O_WRONLY, 0o644) }
            }
        }
        XCTAssertGreaterThanOrEqual(fd, 0)
        close(fd)
        XCTAssertEqual(try FileSystem.listDirectory(dir.path), [])
        let entries = try FileSystem.listDirectoryEntries(dir.path)
        XCTAssertEqual(entries.count, 1)
        XCTAssertNil(entries[0].name)
        XCTAssertEqual(entries[0].rawName, raw)
        XCTAssertEqual(entries[0].displayName, "bad\u{FFFD}")
        XCTAssertEqual(entries[0].status?.kind, .regular)
    }

    func testListingASymlinkToADirectoryIsRefusedUnlessAskedToFollow() throws {
        let dir = try SyncScratchDirectory("fs")
        try dir.mkdir("real")
        try dir.write("real/x")
        try FileSystem.createSymlink(at: dir.url("link"), target: "real")
        XCTAssertThrowsError(try FileSystem.listDirectoryEntries(dir.url("link"))) {
            // O_DIRECTORY|O_NOFOLLOW on a link fails with ENOTDIR.
            XCTAssertTrue(($0 as? SystemError)?.isNotDirectory ?? false, "\($0)")
        }
        XCTAssertEqual(try FileSystem.listDirectoryEntries(dir.url("link"), followLinks: true).map(\.name), ["x"])
    }

    func testSymlinkTargetIsReadBackVerbatimAndItsMtimeIsSetWithoutTouchingTheTarget() throws {
        let dir = try SyncScratchDirectory("fs")
        try dir.write("target", "t")
        let before = try FileSystem.status(dir.url("target"))
        let longTarget = String(repeating: "../x/", count: 100) + "target" // longer than the first 256-byte buffer
        try FileSystem.createSymlink(at: dir.url("long"), target: longTarget)
        XCTAssertEqual(try FileSystem.readLink(dir.url("long")), longTarget)
        try FileSystem.createSymlink(at: dir.url("l"), target: "target")
        XCTAssertEqual(try FileSystem.readLink(dir.url("l")), "target")
        try FileSystem.setModificationTime(dir.url("l"), 1_000_000_000_000_000_000, noFollow: true)
        XCTAssertEqual(try FileSystem.status(dir.url("l")).modificationTime, 1_000_000_000_000_000_000)
        XCTAssertEqual(try FileSystem.status(dir.url("target")).modificationTime, before.modificationTime)
        XCTAssertThrowsError(try FileSystem.readLink(dir.url("target")))
    }

    func testModeDirectoriesAndRemovalRoundTrip() throws {
        let dir = try SyncScratchDirectory("fs")
        try FileSystem.makeDirectory(dir.url("d"), mode: 0o700)
        XCTAssertEqual(try FileSystem.status(dir.url("d")).mode & 0o700, 0o700)
        try dir.write("d/f")
        try FileSystem.setMode(dir.url("d/f"), 0o600)
        XCTAssertEqual(try FileSystem.status(dir.url("d/f")).mode, 0o600)
        XCTAssertThrowsError(try FileSystem.removeDirectory(dir.url("d")))
        try FileSystem.removeFile(dir.url("d/f"))
        try FileSystem.removeDirectory(dir.url("d"))
        XCTAssertThrowsError(try FileSystem.status(dir.url("d")))
        XCTAssertThrowsError(try FileSystem.makeDirectory(dir.url("a/b"))) {
            XCTAssertTrue(($0 as? SystemError)?.isNotFound ?? false)
        }
    }

    func testModificationTimesBeforeTheEpochKeepTheirNanoseconds() throws {
        let dir = try SyncScratchDirectory("fs")
        try dir.write("old")
        try FileSystem.setModificationTime(dir.url("old"), -1_500_000_001)
        XCTAssertEqual(try FileSystem.status(dir.url("old")).modificationTime, -1_500_000_001)
    }

    func testHashFileMatchesInMemoryHashAcrossChunkBoundaries() throws {
        let dir = try SyncScratchDirectory("fs")
        let content = (0..<3_000_001).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        _ = FileManager.default.createFile(atPath: dir.url("big"), contents: Data(content))
        let hasher = SHA256()
        hasher.update("left over from a previous use")
        var progress: [Int64] = []
        let result = try FileSystem.hashFile(dir.url("big"), into: hasher, chunkSize: 1 << 20) { progress.append($0) }
        XCTAssertEqual(result.digest, SHA256.hash(content))
        XCTAssertEqual(result.bytesRead, 3_000_001)
        XCTAssertTrue(result.isStable)
        XCTAssertEqual(progress, [1 << 20, 2 << 20, 3_000_001])
        try dir.write("empty")
        XCTAssertEqual(try FileSystem.hashFile(dir.url("empty"), into: hasher).digest, SHA256.hash([]))
    }

    func testAFileAppendedToWhileHashedIsUnstableAndHashedAgain() throws {
        let dir = try SyncScratchDirectory("fs")
        _ = FileManager.default.createFile(atPath: dir.url("grows"), contents: Data(repeating: 7, count: 300_000))
        let appender = FileHandle(forWritingAtPath: dir.url("grows"))!
        defer { try? appender.close() }
        appender.seekToEndOfFile()
        var appends = 0
        let appendOnce = { (_: Int64) in
            // Only during the first pass: the retry must then see a stable file.
            if appends == 0 { appender.write(Data([1, 2, 3])) }
            appends += 1
        }
        let unstable = try FileSystem.hashFile(dir.url("grows"), into: SHA256(), chunkSize: 100_000, progress: appendOnce)
        XCTAssertFalse(unstable.isStable)
        XCTAssertNotEqual(unstable.before.size, unstable.after.size)

        appends = 0
        let settled = try FileSystem.hashStableFile(dir.url("grows"), into: SHA256(), attempts: 3, chunkSize: 100_000, progress: appendOnce)
        XCTAssertTrue(settled.isStable)
        XCTAssertEqual(settled.bytesRead, 300_006)
        XCTAssertEqual(settled.digest, SHA256.hash(Array(try Data(contentsOf: URL(fileURLWithPath: dir.url("grows"))))))
    }

    func testHashingRefusesSymlinksAndFifosWithoutBlocking() throws {
        let dir = try SyncScratchDirectory("fs")
        try dir.write("f", "x")
        try FileSystem.createSymlink(at: dir.url("l"), target: "f")
        XCTAssertEqual(mkfifo(dir.url("p"), 0o600), 0)
        XCTAssertThrowsError(try FileSystem.hashFile(dir.url("l"), into: SHA256())) {
            XCTAssertTrue(($0 as? SystemError)?.isSymlink ?? false, "\($0)")
        }
        XCTAssertThrowsError(try FileSystem.hashFile(dir.url("p"), into: SHA256()))
    }
}
