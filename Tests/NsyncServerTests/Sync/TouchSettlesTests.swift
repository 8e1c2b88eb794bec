import Foundation
import XCTest
@testable import NsyncServer

/// A touch from elsewhere is set in place and checked after
/// (`LocalDisk.setModificationTime`, `LocalDisk.isSet`): what the file
/// system stores is held, a write in the meantime is looked at.
final class TouchSettlesTests: ReconcilerTestCase {
    /// A file system stores an mtime only in its range: ext4 clamps times
    /// before 1901-12-13 (and after 2446), XFS without bigtime and small
    /// ext4 file systems after 2038, FAT before 1980. A touch from a node
    /// whose file system keeps the time (tmpfs, btrfs) is set here clamped;
    /// `isSet` calls that a write, the install fails as .localChanged, the
    /// look that follows hashes the file, finds the record's bytes under
    /// another mtime and asks for the same touch again: for ever, a hash of
    /// the file each round. On a file system that keeps 1800 (tmpfs) the
    /// touch is simply set once.
    func testATouchToATimeTheFileSystemClampsSettles() throws {
        let dir = try SyncScratchDirectory("touch-clamp")
        try dir.mkdir("root/.nsync/tmp")
        let root = dir.url("root")
        let year1800: Int64 = -5_364_662_400 * 1_000_000_000
        // This file system must clamp it (ext4 does; tmpfs does not).
        try dir.write("probe", "p")
        try FileSystem.setModificationTime(dir.url("probe"), year1800)
        let clamped = try FileSystem.status(dir.url("probe")).modificationTime != year1800

        try dir.write("root/f", "the bytes\n")
        guard case .found(let first?) = LocalDisk.look(root: root, path: "f", known: nil) else { return XCTFail("look") }
        installRemote("f", first)
        // n2 touches f to 1800 (its file system keeps that time).
        var touched = first
        touched.mtime = year1800
        var actions = commit("n2", [put("f", touched, base: index.record(at: "f")!.version)]).actions

        var rounds = 0
        var hashes = 0
        while !actions.isEmpty, rounds < 20 {
            rounds += 1
            var next: [SyncAction] = []
            for action in actions {
                switch action {
                case let .setModificationTime(record, expected):
                    let results = LocalDisk.install([.modificationTime(record, expected: expected)], root: root,
                                                    node: "n1", now: 0)
                    for result in results {
                        switch result {
                        case let .installed(path, version, local):
                            next += reconciler.installed(path, version: version, local: local, index: index)
                        case let .failed(path, version, failure):
                            next += reconciler.installFailed(path, version: version, failure, index: index)
                        default: XCTFail("\(result)")
                        }
                    }
                case .observe(let path):
                    let known = reconciler.manifest[path]?.local ?? nil
                    guard case .found(let local) = LocalDisk.look(root: root, path: path, known: known, beforeHashing: { _, _ in
                        hashes += 1
                    }) else { return XCTFail("look") }
                    next += reconciler.observed(path, local, index: index)
                default:
                    break
                }
            }
            if reconciler.hasOutbox { next += commitOutbox().actions }
            actions = next
        }
        XCTAssertTrue(actions.isEmpty, "still asking after \(rounds) rounds (\(hashes) hashes of f): \(actions)")
        XCTAssertLessThanOrEqual(rounds, 3, "a touch (clamped here: \(clamped)) is set once and held, not retried")
    }

    /// The touch race of InstallWriteRaceTests with a record whose mtime is
    /// fresh (a touch elsewhere half a second ago) instead of one from
    /// 2020, so a tolerance around the set time cannot pass. A write that
    /// lands between the utimensat and the stat is reported as the
    /// record's bytes; the next look trusts the stat and never reads them.
    func testAWriteJustAfterAFreshTouchIsInstalledIsSeenByTheNextLook() throws {
        let dir = try SyncScratchDirectory("touch-fresh", inMemory: true)
        try dir.mkdir("root/.nsync/tmp")
        let root = dir.url("root")
        let bytes = Array("the bytes\n".utf8)
        let written = Array("new bytes\n".utf8)
        var lost: [String] = []
        var refused = 0
        for round in 0..<20_000 {
            let path = "f\(round)", full = root + "/" + path
            let fd = open(full, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            XCTAssertGreaterThanOrEqual(fd, 0)
            _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            try FileSystem.setModificationTime(descriptor: fd, 1_500_000_000_000_000_000)
            close(fd)
            guard case .found(let expected?) = LocalDisk.look(root: root, path: path, known: nil) else {
                return XCTFail("round \(round): the look failed")
            }
            let touched = Int64(Date().timeIntervalSince1970 * 1e9) - 500_000_000
            let record = FileRecord(path: path, version: UInt64(round + 1), kind: .file, size: expected.size, mode: 0o644,
                                    mtime: touched, hash: expected.hash, origin: "n2", holders: ["n2"])
            let done = DispatchSemaphore(value: 0)
            let writer = Thread {
                defer { done.signal() }
                let deadline = Date().addingTimeInterval(2)
                while Date() < deadline, (try? FileSystem.status(full))?.modificationTime != touched {}
                let fd = open(full, O_WRONLY | O_CLOEXEC)
                guard fd >= 0 else { return }
                _ = written.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
                close(fd)
            }
            writer.start()
            let results = LocalDisk.install([.modificationTime(record, expected: expected)], root: root, node: "n1", now: 0)
            XCTAssertEqual(done.wait(timeout: .now() + 5), .success, "the writer ends")
            guard results.count == 1 else { return XCTFail("round \(round): \(results)") }
            switch results[0] {
            case .installed(_, _, let local?):
                guard case .found(let looked?) = LocalDisk.look(root: root, path: path, known: local) else {
                    return XCTFail("round \(round): the look failed")
                }
                if looked.hash != SHA256.hash(written) {
                    lost.append("round \(round): installed \(local.mtime - touched) ns after the record's mtime")
                }
            case .failed(_, _, .localChanged):
                refused += 1
            default:
                return XCTFail("round \(round): \(results)")
            }
            if lost.count >= 3 { break }
        }
        print("fresh touch race: \(refused) refused, \(lost.count) writes held as the record's bytes")
        XCTAssertEqual(lost, [], "writes taken for the record's bytes (never announced)")
    }
}
