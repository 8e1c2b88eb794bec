import Foundation
import XCTest
@testable import NsyncServer

/// What cannot sync (special files, names that are not UTF-8) is reported
/// by the watcher as it comes and goes, not only by the next scan.
/// Real inotify in a temp directory; every wait polls with a deadline.
final class WatcherNotSyncedTests: XCTestCase {
    func testAFIFOAndASocketCreatedAreReported() throws {
        let dir = try SyncScratchDirectory("watch-special")
        let watcher = try Watcher(root: dir.path, ignore: .defaults)
        XCTAssertEqual(mkfifo(dir.url("fifo"), 0o644), 0)
        let socketPath = dir.url("sock")
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in socketPath.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)
        let expected: Set<WatchEvent> = [.notSynced(SkippedEntry(path: "fifo", reason: .specialFile)),
                                        .notSynced(SkippedEntry(path: "sock", reason: .specialFile))]
        let events = collectEvents(from: watcher) { Set($0).isSuperset(of: expected) }
        XCTAssertEqual(Set(events), expected)

        XCTAssertEqual(unlink(dir.url("fifo")), 0)
        let gone = collectEvents(from: watcher) { !$0.isEmpty }
        XCTAssertEqual(gone, [.removed("fifo", isDirectory: false)])
    }

    func testANameThatIsNotUTF8IsReportedWhenItComesAndGoes() throws {
        let dir = try SyncScratchDirectory("watch-badname")
        try dir.mkdir("sub")
        let watcher = try Watcher(root: dir.path, ignore: .defaults)
        let bad = dir.path + "/sub/bad"
        XCTAssertTrue(createFile(rawPath: bad, suffix: [0xfe]))
        let arrived = collectEvents(from: watcher) { !$0.isEmpty }
        XCTAssertEqual(arrived, [.notSynced(SkippedEntry(path: "sub/bad\u{FFFD}", reason: .invalidName))])

        // Renamed to a valid name: the bad one goes, a file arrives.
        XCTAssertTrue(renameRaw(from: bad, fromSuffix: [0xfe], to: dir.url("sub/good")))
        let renamed = collectEvents(from: watcher) { $0.count >= 2 }
        XCTAssertEqual(renamed, [.notSyncedGone("sub/bad\u{FFFD}"), .changed("sub/good")])

        // A directory with such a name is reported and not watched.
        XCTAssertTrue(makeDirectory(rawPath: dir.path + "/dir", suffix: [0xff]))
        let directory = collectEvents(from: watcher) { !$0.isEmpty }
        XCTAssertEqual(directory, [.notSynced(SkippedEntry(path: "dir\u{FFFD}", reason: .invalidName))])
        XCTAssertEqual(watcher.watchedDirectoryCount, 2)
    }

    func testAnIgnoredNameThatIsNotUTF8IsNotReported() throws {
        let dir = try SyncScratchDirectory("watch-badname-ignored")
        let watcher = try Watcher(root: dir.path, ignore: IgnoreRules(text: "*.tmp\n"))
        XCTAssertTrue(createFile(rawPath: dir.path + "/x", suffix: [0xfe] + Array(".tmp".utf8)))
        XCTAssertTrue(createFile(rawPath: dir.path + "/y", suffix: [0xfe]))
        let events = collectEvents(from: watcher) { !$0.isEmpty } + collectEvents(from: watcher, quietFor: 0.2)
        XCTAssertEqual(events, [.notSynced(SkippedEntry(path: "y\u{FFFD}", reason: .invalidName))])
    }

    func testATreeMovedInReportsWhatInsideCannotSync() throws {
        let dir = try SyncScratchDirectory("watch-special-tree")
        let outside = try SyncScratchDirectory("watch-special-outside")
        try outside.mkdir("tree/inner")
        try outside.write("tree/inner/file", "f")
        XCTAssertEqual(mkfifo(outside.url("tree/inner/fifo"), 0o644), 0)
        XCTAssertTrue(createFile(rawPath: outside.path + "/tree/bad", suffix: [0xfe]))
        let watcher = try Watcher(root: dir.path, ignore: .defaults)
        XCTAssertEqual(rename(outside.url("tree"), dir.url("tree")), 0)
        let expected: Set<WatchEvent> = [
            .changed("tree"), .changed("tree/inner"), .changed("tree/inner/file"),
            .notSynced(SkippedEntry(path: "tree/inner/fifo", reason: .specialFile)),
            .notSynced(SkippedEntry(path: "tree/bad\u{FFFD}", reason: .invalidName)),
        ]
        let events = collectEvents(from: watcher) { Set($0).isSuperset(of: expected) }
        XCTAssertEqual(Set(events), expected)
    }

    func testAWatcherStartedOnATreeReportsNothingOfItsOwn() throws {
        // The start-up scan reports what is already there; the watcher does not twice.
        let dir = try SyncScratchDirectory("watch-special-existing")
        XCTAssertEqual(mkfifo(dir.url("fifo"), 0o644), 0)
        XCTAssertTrue(createFile(rawPath: dir.path + "/bad", suffix: [0xfe]))
        let watcher = try Watcher(root: dir.path, ignore: .defaults)
        XCTAssertEqual(collectEvents(from: watcher, quietFor: 0.2), [])
    }
}

/// Paths whose last bytes are not UTF-8 cannot pass through String.
private func withRawPath<T>(_ path: String, _ suffix: [UInt8], _ body: (UnsafePointer<CChar>) -> T) -> T {
    var bytes = Array(path.utf8) + suffix + [0]
    return bytes.withUnsafeMutableBufferPointer {
        $0.baseAddress!.withMemoryRebound(to: CChar.self, capacity: $0.count) { body($0) }
    }
}

func createFile(rawPath path: String, suffix: [UInt8]) -> Bool {
    let fd = withRawPath(path, suffix) { open($0, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644) }
    guard fd >= 0 else { return false }
    return close(fd) == 0
}

private func makeDirectory(rawPath path: String, suffix: [UInt8]) -> Bool {
    withRawPath(path, suffix) { mkdir($0, 0o755) } == 0
}

private func renameRaw(from path: String, fromSuffix: [UInt8], to target: String) -> Bool {
    withRawPath(path, fromSuffix) { rename($0, target) } == 0
}
