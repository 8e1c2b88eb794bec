import Foundation
import XCTest
@testable import NsyncServer

/// Receivers short of room for a sparse file's length: its holes stay holes
/// on every node, so what must be free is what its holder's disk holds, not
/// its size. node1 writes; node2 (and node3) have a 16 MiB tmpfs of their
/// own as PATH, in a private mount namespace (reached through /proc/PID/root).
final class DaemonSparseSpaceTests: XCTestCase {
    private var scratch: DaemonScratch!
    private static let tmpfsBytes = 16 << 20

    override func setUpWithError() throws {
        // A short name: the control socket path through /proc/PID/root must fit sun_path.
        scratch = try DaemonScratch("sparse")
    }

    override func tearDown() {
        scratch?.remove()
    }

    private func freeBytes(_ path: String) -> Int {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return -1 }
        return Int(info.f_bavail) * Int(info.f_frsize)
    }

    private func allocatedBytes(_ path: String) -> Int {
        var st = stat()
        guard stat(path, &st) == 0 else { return -1 }
        return Int(st.st_blocks) * 512
    }

    /// Writes a file of `size` bytes outside every PATH, with `extents`
    /// (offset, bytes) written and holes elsewhere; returns its path and
    /// its whole content.
    private func stageSparseFile(_ name: String, size: Int, extents: [(Int, [UInt8])]) throws -> (String, Data) {
        let path = scratch.path + "/" + name
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let handle = FileHandle(forWritingAtPath: path) else { throw DaemonTestError("cannot create \(path)") }
        try handle.truncate(atOffset: UInt64(size))
        var content = Data(count: size)
        for (offset, bytes) in extents {
            try handle.seek(toOffset: UInt64(offset))
            try handle.write(contentsOf: bytes)
            content.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
        }
        try handle.close()
        return (path, content)
    }

    /// `count` extents of 1 MiB of seeded bytes for a 48 MiB image, one
    /// every 8 MiB (64 KiB in), holes between: six at most.
    private func imageExtents(_ count: Int) -> [(Int, [UInt8])] {
        let seed = LoopTestSupport.seed()
        return (0..<count).map { i in ((i << 23) + (64 << 10), TestBytes.pseudoRandom(count: 1 << 20, seed: seed &+ UInt64(i))) }
    }

    /// Starts `names` (node1 first, on the scratch disk; the others on a
    /// tmpfs each) and waits until a first file reached them all.
    private func startCluster(_ names: [String]) throws -> (cluster: DaemonCluster, daemons: [DaemonProcess], targets: [String]) {
        try DaemonWrapper.skipUnlessAvailable(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                               #"mount -t tmpfs -o size=1m x "$0""#, try scratch.makeDirectory("probe")],
                                              "mounting a tmpfs in a private mount namespace")
        let cluster = try DaemonCluster(names: names, certificates: TestCertificates.shared, in: scratch)
        let source = cluster.member("node1").root
        FileManager.default.createFile(atPath: source + "/warm.txt", contents: Data("every node is up\n".utf8))
        var daemons = [try cluster.start("node1", in: scratch, extra: ["--log-level", "debug"])]
        var targets = [source]
        for name in names.dropFirst() {
            let wrapper = DaemonWrapper.tmpfs(cluster.member(name).root, bytes: Self.tmpfsBytes)
            let daemon = try cluster.start(name, in: scratch, wrapper: wrapper)
            daemons.append(daemon)
            targets.append("/proc/\(daemon.pid)/root" + cluster.member(name).root)
        }
        let logs = { self.logs(daemons) }
        DaemonWait.until("warm.txt on every node", timeout: 30, context: logs) {
            targets.allSatisfy { FileManager.default.fileExists(atPath: $0 + "/warm.txt") }
        }
        for target in targets.dropFirst() {
            XCTAssertLessThanOrEqual(freeBytes(target), Self.tmpfsBytes, "\(target) is not the tmpfs")
        }
        return (cluster, daemons, targets)
    }

    private func logs(_ daemons: [DaemonProcess]) -> String {
        daemons.enumerated().map { "node\($0.offset + 1):\n\($0.element.log.suffix(5000))" }.joined(separator: "\n")
    }

    func testASparseFileLongerThanTheFreeSpaceArrivesWhenItsDataFits() throws {
        let (_, daemons, targets) = try startCluster(["node1", "node2", "node3"])
        let logs = { self.logs(daemons) }

        // 48 MiB long (three times each receiver's disk, and relayed: 16 MiB
        // and more), 6 MiB of data in six extents, holes between.
        let size = 48 << 20
        let extents = imageExtents(6)
        let (staged, content) = try stageSparseFile("disk.img", size: size, extents: extents)
        XCTAssertLessThan(allocatedBytes(staged), 8 << 20, "the test needs a disk that keeps node1's copy sparse")
        XCTAssertEqual(rename(staged, targets[0] + "/disk.img"), 0)

        DaemonWait.until("node2 and node3 to hold disk.img", timeout: 60, context: logs) {
            targets.dropFirst().allSatisfy { (try? FileSystem.status($0 + "/disk.img"))?.size == Int64(size) }
        }
        for (i, target) in targets.enumerated().dropFirst() {
            XCTAssertEqual(FileManager.default.contents(atPath: target + "/disk.img"), content, "node\(i + 1)'s disk.img")
            let allocated = allocatedBytes(target + "/disk.img")
            print("node\(i + 1): disk.img takes \(allocated >> 10) KiB of its \(size >> 20) MiB; \(freeBytes(target) >> 10) KiB free")
            XCTAssertLessThan(allocated, 8 << 20, "node\(i + 1) kept the holes")
            XCTAssertFalse(daemons[i].log.contains("disk.img needs"), "node\(i + 1) never found it too large\n" + logs())
            XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: target + "/.nsync/tmp")) ?? ["?"], [],
                           "nothing left in node\(i + 1)'s .nsync/tmp")
            // What `nsyncd status` says of that disk: the 16 MiB tmpfs, its free room as statvfs sees it.
            let disk = DaemonProbe.status(target)?.disk
            XCTAssertEqual(disk?.totalBytes, 16 << 20, "node\(i + 1)'s status names its own disk")
            XCTAssertEqual(disk?.keptFreeBytes, (16 << 20) / 20)
            XCTAssertEqual(Double(disk?.freeBytes ?? 0), Double(freeBytes(target)), accuracy: Double(1 << 20))
        }
        // The second receiver was sent to the first and got it relayed: the
        // relay passed on what the file takes on node1's disk.
        XCTAssertTrue(daemons[0].log.contains("for disk.img (version"), "node1 sent one receiver to the other\n" + logs())
        for daemon in daemons { XCTAssertEqual(daemon.stop(), 0, logs()) }
    }

    /// Short of room even for a sparse file's data: refused up front, for
    /// what its holder's disk holds; once room is freed it arrives (the
    /// refusal says nothing about its holes, so it does not need its whole
    /// length next time).
    func testASparseFileRefusedForWantOfRoomArrivesOnceRoomIsFreed() throws {
        let (_, daemons, targets) = try startCluster(["node1", "node2"])
        let logs = { self.logs(daemons) }
        let target = targets[1]
        let filler = target + "/.nsync/filler"
        FileManager.default.createFile(atPath: filler, contents: Data(count: freeBytes(target) - (4 << 20)))

        let extents = imageExtents(6)
        let (staged, content) = try stageSparseFile("disk.img", size: 48 << 20, extents: extents)
        XCTAssertEqual(rename(staged, targets[0] + "/disk.img"), 0)
        DaemonWait.until("node2 to refuse disk.img for want of room", timeout: 30, context: logs) {
            daemons[1].log.contains("disk.img needs 6.0 MiB (sparse: 48.0 MiB long)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: target + "/disk.img"))

        try FileManager.default.removeItem(atPath: filler)
        DaemonWait.until("node2 to hold disk.img once room is freed", timeout: 30, context: logs) {
            (try? FileSystem.status(target + "/disk.img"))?.size == 48 << 20
        }
        XCTAssertEqual(FileManager.default.contents(atPath: target + "/disk.img"), content)
        XCTAssertFalse(daemons[1].log.contains("disk.img needs 48.0 MiB"), "its holder's word still held\n" + logs())
        for daemon in daemons { XCTAssertEqual(daemon.stop(), 0, logs()) }
    }

    /// A copy of a sparse file made on node1 is copied on node2 from the
    /// bytes it holds, holes kept, on a disk with room for its data but
    /// not its length: not fetched after all.
    func testACopyOfASparseFileIsCopiedLocallyWithItsHolesOnADiskShortOfItsLength() throws {
        let (_, daemons, targets) = try startCluster(["node1", "node2"])
        let logs = { self.logs(daemons) }
        let target = targets[1]
        let extents = imageExtents(4)
        let (staged, content) = try stageSparseFile("disk.img", size: 48 << 20, extents: extents)
        XCTAssertEqual(rename(staged, targets[0] + "/disk.img"), 0)
        DaemonWait.until("node2 to hold disk.img", timeout: 30, context: logs) {
            (try? FileSystem.status(target + "/disk.img"))?.size == 48 << 20
        }
        let receivedBefore = DaemonProbe.status(target)?.bytesReceived ?? 0
        print("node2: \(freeBytes(target) >> 10) KiB free with disk.img")

        let (copy, _) = try stageSparseFile("copy.img", size: 48 << 20, extents: extents)
        XCTAssertEqual(rename(copy, targets[0] + "/copy.img"), 0)
        DaemonWait.until("node2 to hold copy.img", timeout: 30, context: logs) {
            (try? FileSystem.status(target + "/copy.img"))?.size == 48 << 20
        }
        XCTAssertEqual(FileManager.default.contents(atPath: target + "/copy.img"), content)
        XCTAssertLessThan(allocatedBytes(target + "/copy.img"), 6 << 20, "the copy kept the holes")
        XCTAssertFalse(daemons[1].log.contains("copy.img after all"), "copied here, not fetched\n" + logs())
        let received = (DaemonProbe.status(target)?.bytesReceived ?? .max) - receivedBefore
        XCTAssertLessThan(received, 1 << 20, "copy.img's data was not received")
        for daemon in daemons { XCTAssertEqual(daemon.stop(), 0, logs()) }
    }

    /// A sparse file whose holes are too small to stay holes on the
    /// receiver (4 KiB of data every 64 KiB): its holder's allocation fits,
    /// the file does not. The fetch stops before it eats into the raft
    /// log's reserve, says why, and its next try asks for the whole size
    /// up front instead of filling the disk again.
    func testASparseFileThatDoesNotStaySparseStopsBeforeTheReserveAndIsNotFetchedAgainIntoAFullDisk() throws {
        try stopsBeforeTheReserveAndAsksForItsWholeSizeNextTime(roomBesideTheAllocation: nil)
    }

    /// The same when the disk has just a little more room than the holder's
    /// allocation: the write refused is what shows the file does not stay
    /// sparse here (the `.part` itself is still within the allocation).
    func testASparseFileThatDoesNotStaySparseIsFoundOutWhenTheRoomIsJustItsAllocation() throws {
        // Less than one 256 KiB write, with room for what the raft log and
        // the manifest may still take meanwhile.
        try stopsBeforeTheReserveAndAsksForItsWholeSizeNextTime(roomBesideTheAllocation: 160 << 10)
    }

    private func stopsBeforeTheReserveAndAsksForItsWholeSizeNextTime(roomBesideTheAllocation: Int?,
                                                                     file: StaticString = #filePath, line: UInt = #line) throws {
        let (_, daemons, targets) = try startCluster(["node1", "node2"])
        let logs = { self.logs(daemons) }
        let target = targets[1]
        let seed = LoopTestSupport.seed()

        let size = 32 << 20
        let data = TestBytes.pseudoRandom(count: size / 16, seed: seed)
        let extents = stride(from: 0, to: size, by: 64 << 10).map { offset in
            (offset, Array(data[(offset / 16)..<(offset / 16 + 4_096)]))
        }
        let (staged, _) = try stageSparseFile("holes.img", size: size, extents: extents)
        let allocated = allocatedBytes(staged)
        XCTAssertLessThan(allocated, 4 << 20, "the test needs a disk that keeps node1's copy sparse", file: file, line: line)
        let reserve = Int(Fetcher.diskReserve(total: UInt64(Self.tmpfsBytes)))
        let filler = target + "/.nsync/filler"
        if let room = roomBesideTheAllocation {
            FileManager.default.createFile(atPath: filler, contents: Data(count: freeBytes(target) - reserve - allocated - room))
            print("node2: \(freeBytes(target) >> 10) KiB free; holes.img takes \(allocated >> 10) KiB on node1")
        }
        let freeAtStart = freeBytes(target)
        XCTAssertEqual(rename(staged, targets[0] + "/holes.img"), 0)

        var lowest = Int.max
        var errors: [String] = []
        DaemonWait.until("node2 to report that holes.img does not fit", timeout: 30, file: file, line: line, context: logs) {
            lowest = min(lowest, freeBytes(target))
            errors = DaemonProbe.status(target)?.recentErrors ?? []
            return errors.contains { $0.contains("holes.img") && $0.contains("would leave less than") }
        }
        print("node2: lowest free \(lowest >> 10) KiB (reserve \(reserve >> 10) KiB); \(errors)")
        XCTAssertGreaterThanOrEqual(lowest, reserve, "the fetch ate into the raft log's reserve\n" + logs(), file: file, line: line)
        XCTAssertFalse(errors.contains { $0.contains("No space left on device") && !$0.contains("kept free") },
                       "stopped by its own check, not by a full disk: \(errors)", file: file, line: line)
        // The next try needs the whole 32 MiB before it starts: refused up front.
        DaemonWait.until("node2 to refuse holes.img up front", timeout: 30, file: file, line: line, context: logs) {
            daemons[1].log.contains("holes.img needs 32.0 MiB (sparse on its holder, but its holes are too small to stay holes here)")
        }
        XCTAssertTrue(daemons[1].isRunning, logs(), file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: target + "/holes.img"), file: file, line: line)
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: target + "/.nsync/tmp")) ?? ["?"], [],
                       file: file, line: line)
        XCTAssertGreaterThan(freeBytes(target), freeAtStart - (1 << 20), "nothing of holes.img is left on node2's disk",
                             file: file, line: line)
        for daemon in daemons { XCTAssertEqual(daemon.stop(), 0, logs(), file: file, line: line) }
    }
}
