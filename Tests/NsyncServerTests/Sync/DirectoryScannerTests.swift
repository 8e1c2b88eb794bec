import Foundation
import XCTest
@testable import NsyncServer

final class DirectoryScannerTests: XCTestCase {
    func testScanReportsFilesDirectoriesAndSymlinksSortedWithMetadata() throws {
        let dir = try SyncScratchDirectory("scan")
        try dir.mkdir("b/empty")
        try dir.write("b/f.txt", "hello", mode: 0o600)
        try dir.write("a.txt", "x")
        try dir.write("b.c", "")
        try FileSystem.createSymlink(at: dir.url("link"), target: "b/f.txt")
        try FileSystem.createSymlink(at: dir.url("dangling"), target: "../nowhere")
        try FileSystem.setModificationTime(dir.url("a.txt"), 1_600_000_000_000_000_001)
        try FileSystem.setMode(dir.url("b/f.txt"), 0o600)

        let result = try DirectoryScanner.scan(root: dir.path, ignore: .defaults)
        XCTAssertEqual(result.entries.map(\.path), ["a.txt", "b", "b.c", "b/empty", "b/f.txt", "dangling", "link"],
                       "sorted by UTF-8 bytes: '.' (0x2e) sorts before '/' (0x2f)")
        let byPath = Dictionary(uniqueKeysWithValues: result.entries.map { ($0.path, $0) })
        XCTAssertEqual(byPath["a.txt"]?.modificationTime, 1_600_000_000_000_000_001)
        XCTAssertEqual(byPath["a.txt"]?.size, 1)
        XCTAssertEqual(byPath["b/f.txt"], ScannedEntry(path: "b/f.txt", kind: .file, size: 5, mode: 0o600,
                                                        modificationTime: byPath["b/f.txt"]!.modificationTime,
                                                        inode: try FileSystem.status(dir.url("b/f.txt")).inode))
        XCTAssertEqual(byPath["b/empty"]?.kind, .directory)
        XCTAssertEqual(byPath["link"]?.kind, .symlink)
        XCTAssertEqual(byPath["link"]?.symlinkTarget, "b/f.txt")
        XCTAssertEqual(byPath["dangling"]?.symlinkTarget, "../nowhere")
        XCTAssertEqual(result.skipped, [])
    }

    func testSymlinkedDirectoriesAreNotFollowedButASymlinkedRootIs() throws {
        let outside = try SyncScratchDirectory("scan-outside")
        try outside.write("secret", "s")
        let dir = try SyncScratchDirectory("scan")
        try FileSystem.createSymlink(at: dir.url("out"), target: outside.path)
        let result = try DirectoryScanner.scan(root: dir.path, ignore: .defaults)
        XCTAssertEqual(result.entries.map(\.path), ["out"])
        XCTAssertEqual(result.entries[0].kind, .symlink)

        let linkedRoot = try SyncScratchDirectory("scan-link")
        try FileSystem.createSymlink(at: linkedRoot.url("root"), target: outside.path)
        XCTAssertEqual(try DirectoryScanner.scan(root: linkedRoot.url("root") + "/", ignore: .defaults).entries.map(\.path), ["secret"])
    }

    func testIgnoredPathsAndTheStateDirectoryAreLeftOutButTheIgnoreFileIsNot() throws {
        let dir = try SyncScratchDirectory("scan")
        try dir.mkdir(".nsync/tmp")
        try dir.write(".nsync/raft.log")
        try dir.mkdir("build/deep")
        try dir.write("build/deep/x.o")
        try dir.write("a.tmp")
        try dir.write("keep.tmp")
        try dir.write(".notes.swp")
        try dir.write("notes~")
        try dir.write("notes")
        let text = "*.tmp\n!keep.tmp\nbuild/\n.*\n"
        try dir.write(".nsyncignore", text)
        let result = try DirectoryScanner.scan(root: dir.path, ignore: IgnoreRules(text: text))
        XCTAssertEqual(result.entries.map(\.path), [".nsyncignore", "keep.tmp", "notes"])
    }

    func testSpecialFilesAndInvalidNamesAreSkippedWithAReason() throws {
        let dir = try SyncScratchDirectory("scan")
        XCTAssertEqual(mkfifo(dir.url("fifo"), 0o644), 0)
        var bad = Array((dir.path + "/bad").utf8) + [0xfe, 0]
        let fd = bad.withUnsafeMutableBufferPointer {
            $0.baseAddress!.withMemoryRebound(to: CChar.self, capacity: $0.count) { open($0, O_CREAT | O_WRONLY, 0o644) }
        }
        XCTAssertGreaterThanOrEqual(fd, 0)
        close(fd)
        try dir.write("good")
        let result = try DirectoryScanner.scan(root: dir.path, ignore: .defaults)
        XCTAssertEqual(result.entries.map(\.path), ["good"])
        XCTAssertEqual(Set(result.skipped.map(\.path)), ["fifo", "bad\u{FFFD}"])
        XCTAssertEqual(result.skipped.first { $0.path == "fifo" }?.reason, .specialFile)
        XCTAssertEqual(result.skipped.first { $0.path != "fifo" }?.reason, .invalidName)
        XCTAssertTrue(result.skipped.allSatisfy { $0.description.contains("skipped") })
    }

    /// Root bypasses permissions, so as root the scan runs with an
    /// unprivileged file-system uid (setfsuid is per thread on Linux).
    func testAnUnreadableDirectoryIsReportedAndSkippedNotFatal() throws {
        let dir = try SyncScratchDirectory("scan")
        try dir.mkdir("locked/inner")
        try dir.write("locked/inner/f")
        try dir.write("open.txt")
        chmod(dir.url("locked"), 0o000)
        let asRoot = getuid() == 0
        // <sys/fsuid.h> is not in the Glibc module; the symbol is in libc.
        typealias SetFSUID = @convention(c) (UInt32) -> Int32
        guard let symbol = dlsym(nil, "setfsuid") else { return XCTFail("no setfsuid in libc") }
        let setfsuid = unsafeBitCast(symbol, to: SetFSUID.self)
        if asRoot { _ = setfsuid(65534) }
        let result = Result { try DirectoryScanner.scan(root: dir.path, ignore: .defaults) }
        if asRoot { _ = setfsuid(0) }
        let scan = try result.get()
        XCTAssertEqual(scan.entries.map(\.path), ["open.txt"])
        XCTAssertEqual(scan.skipped.count, 1)
        XCTAssertEqual(scan.skipped.first?.path, "locked")
        guard case .unreadable(let error)? = scan.skipped.first?.reason else { return XCTFail("\(scan.skipped)") }
        XCTAssertEqual(error.errno, EACCES)
        XCTAssertTrue(scan.skipped[0].description.contains("permissions"), scan.skipped[0].description)
    }

    func testARootThatIsNotADirectoryThrows() throws {
        let dir = try SyncScratchDirectory("scan")
        try dir.write("file")
        XCTAssertThrowsError(try DirectoryScanner.scan(root: dir.url("file"), ignore: .defaults)) {
            XCTAssertTrue(($0 as? SystemError)?.isNotDirectory ?? false, "\($0)")
        }
        XCTAssertThrowsError(try DirectoryScanner.scan(root: dir.url("missing"), ignore: .defaults))
    }

    func testProgressIsReportedEveryIntervalWithEntriesAndBytes() throws {
        let dir = try SyncScratchDirectory("scan")
        for i in 0..<5 { try dir.write("f\(i)", String(repeating: "x", count: 10)) }
        var reports: [(Int, Int64)] = []
        _ = try DirectoryScanner.scan(root: dir.path, ignore: .defaults, progressInterval: 2) { reports.append(($0, $1)) }
        XCTAssertEqual(reports.map(\.0), [2, 4])
        XCTAssertEqual(reports.map(\.1), [20, 40])
    }

    /// 100,000 files in 1,000 directories: the start-up scan of a large tree.
    func testScanOf100000FilesIsFast() throws {
        let dir = try SyncScratchDirectory("scan-big", inMemory: true)
        let setupStart = Date()
        for d in 0..<1000 {
            let sub = dir.url("d\(d)")
            XCTAssertEqual(Glibc.mkdir(sub, 0o755), 0)
            for f in 0..<100 {
                let fd = open(sub + "/file-\(f).dat", O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
                XCTAssertGreaterThanOrEqual(fd, 0)
                close(fd)
            }
        }
        let setup = Date().timeIntervalSince(setupStart)
        let ignore = IgnoreRules(text: "*.tmp\nbuild/\n!keep.tmp\n**/cache/**\n")
        let wallStart = Date()
        let cpuStart = syncThreadCPUSeconds()
        let result = try DirectoryScanner.scan(root: dir.path, ignore: ignore)
        let cpu = syncThreadCPUSeconds() - cpuStart
        let wall = Date().timeIntervalSince(wallStart)
        XCTAssertEqual(result.entries.count, 101_000)
        print("scan: 100,000 files + 1,000 dirs in \(String(format: "%.3f", wall)) s wall, \(String(format: "%.3f", cpu)) s CPU "
              + "(\(Int(Double(result.entries.count) / cpu)) entries/s CPU); creating them took \(String(format: "%.1f", setup)) s")
    }
}
