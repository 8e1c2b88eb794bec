import Foundation
import XCTest
@testable import NsyncServer

/// A program may rewrite a file the moment it appears (a config agent, a
/// test's next round): what an install reports having put on disk must be
/// the fetched file's stat, not whatever the path holds a moment after the
/// rename. Else the node holds the program's bytes as the fetched version
/// (a look with that same stat does not hash again) and never announces them.
final class InstallWriteRaceTests: XCTestCase {
    func testAWriteJustAfterTheRenameIsSeenByTheNextLook() throws {
        let dir = try SyncScratchDirectory("install-race", inMemory: true)
        try dir.mkdir("root/.nsync/tmp")
        let root = dir.url("root")
        let fetched = Array("fetched bytes\n".utf8)
        let written = Array("written bytes\n".utf8)  // the same size: only the mtime tells
        let mtime: Int64 = 1_600_000_000_123_456_789
        var writerWon = 0
        for round in 0..<1_000 {
            let path = "f\(round)"
            let temporary = root + "/.nsync/tmp/fetch-\(round)"
            try Self.write(fetched, to: temporary, mtime: mtime)
            let record = FileRecord(path: path, version: UInt64(round + 1), kind: .file, size: UInt64(fetched.count),
                                    mode: 0o644, mtime: mtime, hash: SHA256.hash(fetched), origin: "n1", holders: ["n1"])
            let full = root + "/" + path
            let done = DispatchSemaphore(value: 0)
            let writer = Thread {
                // Opens the path as soon as it exists and writes over its bytes in place.
                defer { done.signal() }
                let deadline = Date().addingTimeInterval(2)
                var fd: Int32 = -1
                while fd < 0, Date() < deadline { fd = open(full, O_WRONLY | O_CLOEXEC) }
                guard fd >= 0 else { return }
                _ = written.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
                close(fd)
            }
            writer.start()
            let results = LocalDisk.install([.file(Fetcher.Fetched(record: record, expected: nil, temporaryPath: temporary))],
                                            root: root, node: "n2", now: 0)
            XCTAssertEqual(done.wait(timeout: .now() + 5), .success, "the writer ends")
            guard results.count == 1, case .installed(_, _, let local?) = results[0] else {
                return XCTFail("round \(round): not installed: \(results)")
            }
            guard case .found(let looked?) = LocalDisk.look(root: root, path: path, known: local) else {
                return XCTFail("round \(round): the look failed")
            }
            XCTAssertEqual(String(decoding: try XCTUnwrap(FileManager.default.contents(atPath: full)), as: UTF8.self),
                           "written bytes\n", "round \(round): the writer wrote after the rename")
            if looked.hash != SHA256.hash(written) {
                return XCTFail("round \(round): the look took the program's bytes for the fetched ones (install reported \(local))")
            }
            if (try FileSystem.status(full)).modificationTime != mtime { writerWon += 1 }
        }
        XCTAssertEqual(writerWon, 1_000, "every round's write came after the install's rename")
    }

    /// The same for a new mtime set in place (a touch from elsewhere): a
    /// write the moment it is set is a change to look at, never held as
    /// the record's bytes.
    func testAWriteJustAfterATouchIsInstalledIsSeenByTheNextLook() throws {
        try Self.touchRace(rounds: 3_000, label: "touch-race") { round in 1_600_000_000_000_000_000 + Int64(round) }
    }

    /// `rounds` touches to `touched(round)`, each raced by a write the
    /// moment the time is set: every install either reports what a look
    /// then reads again (the write) or leaves it to a look (.localChanged).
    static func touchRace(rounds: Int, label: String, touched: (Int) -> Int64) throws {
        let dir = try SyncScratchDirectory(label, inMemory: true)
        try dir.mkdir("root/.nsync/tmp")
        let root = dir.url("root")
        let bytes = Array("the bytes\n".utf8)
        let written = Array("new bytes\n".utf8)
        var refused = 0
        for round in 0..<rounds {
            let path = "f\(round)", full = root + "/" + path
            try write(bytes, to: full, mtime: 1_500_000_000_000_000_000)
            guard case .found(let expected?) = LocalDisk.look(root: root, path: path, known: nil) else {
                return XCTFail("round \(round): the look failed")
            }
            let touched = touched(round)
            let record = FileRecord(path: path, version: UInt64(round + 1), kind: .file, size: expected.size, mode: 0o644,
                                    mtime: touched, hash: expected.hash, origin: "n1", holders: ["n1"])
            let done = DispatchSemaphore(value: 0)
            let writer = Thread {
                // Writes over the bytes once the new time is set.
                defer { done.signal() }
                let deadline = Date().addingTimeInterval(2)
                while Date() < deadline, (try? FileSystem.status(full))?.modificationTime != touched {}
                let fd = open(full, O_WRONLY | O_CLOEXEC)
                guard fd >= 0 else { return }
                _ = written.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
                close(fd)
            }
            writer.start()
            let results = LocalDisk.install([.modificationTime(record, expected: expected)], root: root, node: "n2", now: 0)
            XCTAssertEqual(done.wait(timeout: .now() + 5), .success, "the writer ends")
            guard results.count == 1 else { return XCTFail("round \(round): \(results)") }
            switch results[0] {
            case .installed(_, _, let local?):
                guard case .found(let looked?) = LocalDisk.look(root: root, path: path, known: local) else {
                    return XCTFail("round \(round): the look failed")
                }
                if looked.hash != SHA256.hash(written) {
                    return XCTFail("round \(round): the look took the write for the record's bytes (install reported \(local), \(local.mtime - touched) ns from the touch)")
                }
            case .failed(_, _, .localChanged):
                refused += 1  // the reconciler looks at it: the write is announced
            default:
                return XCTFail("round \(round): \(results)")
            }
        }
        print("\(label): \(refused) of \(rounds) installs saw the write and left it to a look")
    }

    /// A directory's mode: a chmod the moment the record's mode is set is
    /// not reported as the record's mode being there.
    func testAChmodJustAfterADirectoryIsInstalledIsNotReportedAsTheRecordsMode() throws {
        let dir = try SyncScratchDirectory("directory-race", inMemory: true)
        try dir.mkdir("root/.nsync/tmp")
        let root = dir.url("root")
        for round in 0..<3_000 {
            let path = "d\(round)", full = root + "/" + path
            let record = FileRecord(path: path, version: UInt64(round + 1), kind: .directory, size: 0, mode: 0o750,
                                    mtime: 1_600_000_000_000_000_000, hash: [], origin: "n1", holders: ["n1"])
            let done = DispatchSemaphore(value: 0)
            let writer = Thread {
                defer { done.signal() }
                let deadline = Date().addingTimeInterval(2)
                // Once the install set its mode, then its time: right before it reports.
                while Date() < deadline, (try? FileSystem.status(full))?.modificationTime != 1_600_000_000_000_000_000 {}
                chmod(full, 0o700)
            }
            writer.start()
            let results = LocalDisk.install([.directory(record, expected: nil)], root: root, node: "n2", now: 0)
            XCTAssertEqual(done.wait(timeout: .now() + 5), .success, "the writer ends")
            guard results.count == 1 else { return XCTFail("round \(round): \(results)") }
            switch results[0] {
            case .installed(_, _, let local?):
                if local.mode != 0o750 {
                    return XCTFail("round \(round): the user's chmod was reported as installed (\(local)): never announced")
                }
            case .failed(_, _, .localChanged):
                break
            default:
                return XCTFail("round \(round): \(results)")
            }
        }
    }

    /// What a file system stores for a time set is held as set: rounded to
    /// its step, or clamped to its range (ext4 keeps 1901-2446), or every
    /// such touch would be refused and retried for ever. A write's time,
    /// the clock's while the set ran, is not the set time, even when the
    /// set time is fresh (a touch elsewhere a moment ago).
    func testWhatTheFileSystemStoresCountsAsSetAndAWritesTimeDoesNot() {
        let now = FileSystem.coarseNow()
        let window = LocalDisk.writeWindow(since: now)
        let set: Int64 = 1_600_000_000_123_456_789
        XCTAssertTrue(LocalDisk.isSet(set, to: set, window: window))
        XCTAssertTrue(LocalDisk.isSet(1_600_000_000_000_000_000, to: set, window: window), "cut to the second")
        XCTAssertTrue(LocalDisk.isSet(-2_147_483_648_000_000_000, to: -5_364_662_400_000_000_000, window: window),
                      "1800 clamped to 1901")
        XCTAssertFalse(LocalDisk.isSet(now, to: set, window: window), "a write's time")
        XCTAssertFalse(LocalDisk.isSet(now, to: now - 300_000_000, window: window), "a write's time after a fresh touch")
        XCTAssertTrue(LocalDisk.isSet(now - 300_000_000, to: now - 300_000_000, window: window), "a fresh touch set")
    }

    static func write(_ bytes: [UInt8], to path: String, mtime: Int64) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SystemError(errno: errno, operation: "open", path: path) }
        defer { close(fd) }
        guard bytes.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw SystemError(errno: errno, operation: "write", path: path)
        }
        try FileSystem.setModificationTime(descriptor: fd, mtime)
    }
}
