import Foundation
import XCTest
@testable import NsyncServer

/// `nsyncd status`: what a daemon reports reads back the same, and the human
/// view says what an operator needs without listing thousands of lines.
final class NodeStatusTests: XCTestCase {
    private func status(kept: [String], count: Int) -> NodeStatus {
        NodeStatus(name: "n2", role: "follower", term: 3, leader: "n1", commitIndex: 10, appliedIndex: 10,
                   snapshotIndex: 0, files: 4, peers: [], transfers: [], pendingFiles: 0, pendingBytes: 0,
                   pendingAnnouncements: 0, recentConflicts: [], recentErrors: [], uptimeSeconds: 1,
                   keptDirectories: kept.isEmpty ? nil : kept, keptDirectoryCount: kept.isEmpty ? nil : count)
    }

    func testKeptDirectoriesAreListedWithHowManyMoreThereAre() throws {
        let listed = (0..<NodeStatus.unavailableListLimit).map { "build/d\($0)" }
        let full = status(kept: listed, count: 25)
        XCTAssertEqual(try NodeStatus.decode(full.jsonData()), full)
        let text = full.rendered()
        XCTAssertTrue(text.contains("kept here, deleted elsewhere"), text)
        XCTAssertTrue(text.contains("  build/d19\n"), text)
        XCTAssertTrue(text.contains("  ... and 5 more\n"), text)

        let none = status(kept: [], count: 0).rendered()
        XCTAssertFalse(none.contains("kept here"), none)
    }

    /// A newer `nsyncd status` reads a daemon that predates the field.
    func testAStatusWithoutKeptDirectoriesDecodes() throws {
        var json = try JSONSerialization.jsonObject(with: status(kept: ["a"], count: 1).jsonData()) as! [String: Any]
        json["keptDirectories"] = nil
        json["keptDirectoryCount"] = nil
        let decoded = try NodeStatus.decode(try JSONSerialization.data(withJSONObject: json))
        XCTAssertNil(decoded.keptDirectories)
    }

    /// Bytes copied from held versions are shown next to those received,
    /// and a status from a daemon without the field still decodes.
    func testBytesReusedAreShownBesideBytesReceived() throws {
        var reported = status(kept: [], count: 0)
        reported.bytesSent = 1 << 20
        reported.bytesReceived = 128 << 10
        reported.bytesReused = 1 << 30
        XCTAssertEqual(try NodeStatus.decode(reported.jsonData()), reported)
        let text = reported.rendered()
        XCTAssertTrue(text.contains("received 128.0 KiB, 1.0 GiB more copied from versions held here"), text)
        var json = try JSONSerialization.jsonObject(with: reported.jsonData()) as! [String: Any]
        json["bytesReused"] = nil
        let older = try NodeStatus.decode(try JSONSerialization.data(withJSONObject: json))
        XCTAssertNil(older.bytesReused)
        XCTAssertFalse(older.rendered().contains("copied from versions"))
    }

    /// Versions the index has and this node does not are shown when the
    /// fetcher's queue holds fewer (fetches waiting for looks or holders),
    /// so "to fetch: 0" never hides a node that is behind; an older
    /// daemon's status (no such field) shows the queue alone.
    func testVersionsNotHeldHereAreShownWhenTheQueueHoldsFewer() throws {
        var reported = status(kept: [], count: 0)
        reported.pendingFiles = 3
        reported.pendingBytes = 12 << 10
        reported.notHeldFiles = 731
        reported.notHeldBytes = 3 << 20
        XCTAssertEqual(try NodeStatus.decode(reported.jsonData()), reported)
        XCTAssertTrue(reported.rendered().contains("to fetch: 3 files (12.0 KiB), not held here yet: 731 versions (3.0 MiB); "),
                      reported.rendered())
        reported.notHeldFiles = 3
        XCTAssertTrue(reported.rendered().contains("to fetch: 3 files (12.0 KiB); local changes"), reported.rendered())
        var json = try JSONSerialization.jsonObject(with: reported.jsonData()) as! [String: Any]
        json["notHeldFiles"] = nil
        json["notHeldBytes"] = nil
        let older = try NodeStatus.decode(try JSONSerialization.data(withJSONObject: json))
        XCTAssertNil(older.notHeldFiles)
        XCTAssertFalse(older.rendered().contains("not held"))
    }

    /// The disk line: room left, and when downloads stop for the raft log's
    /// reserve; an older daemon's status (no disk) shows none.
    func testTheDiskLineSaysWhatIsFreeAndWhenDownloadsStop() throws {
        var reported = status(kept: [], count: 0)
        reported.disk = NodeStatus.Disk(freeBytes: 3 << 30, totalBytes: 50 << 30, keptFreeBytes: 64 << 20)
        XCTAssertEqual(try NodeStatus.decode(reported.jsonData()), reported)
        var text = reported.rendered()
        XCTAssertTrue(text.contains("disk: 3.0 GiB free of 50.0 GiB (downloads stop at 64.0 MiB free, kept for the raft log)"), text)
        reported.disk?.freeBytes = 60 << 20
        text = reported.rendered()
        XCTAssertTrue(text.contains("disk: 60.0 MiB free of 50.0 GiB, FULL for downloads: 64.0 MiB is kept free for the raft log"), text)
        var json = try JSONSerialization.jsonObject(with: reported.jsonData()) as! [String: Any]
        XCTAssertEqual((json["disk"] as? [String: Any])?["keptFreeBytes"] as? Int, 64 << 20, "the JSON key scripts read")
        json["disk"] = nil
        let older = try NodeStatus.decode(try JSONSerialization.data(withJSONObject: json))
        XCTAssertNil(older.disk)
        XCTAssertFalse(older.rendered().contains("disk:"))
    }

    /// A file this node reads before it asks a holder is listed with what
    /// it does; one being received, with the holder; an older daemon's
    /// transfers (no stage) still decode.
    func testATransferStillReadingHereSaysWhatItDoes() throws {
        var reported = status(kept: [], count: 0)
        reported.transfers = [
            NodeStatus.Transfer(path: "vm/disk.img", from: "n2", bytesDone: 1 << 30, bytesTotal: 4 << 30,
                                bytesPerSecond: Double(500 << 20), stage: "hashing the blocks of the version held here"),
            NodeStatus.Transfer(path: "big.iso", from: "n1", bytesDone: 1 << 20, bytesTotal: 2 << 20, bytesPerSecond: Double(1 << 20)),
        ]
        XCTAssertEqual(try NodeStatus.decode(reported.jsonData()), reported)
        let text = reported.rendered()
        XCTAssertTrue(text.contains(" 25% vm/disk.img: hashing the blocks of the version held here, 500.0 MiB/s, ETA 6s"), text)
        XCTAssertTrue(text.contains(" 50% big.iso from n1, "), text)
        var json = try JSONSerialization.jsonObject(with: reported.jsonData()) as! [String: Any]
        var transfers = json["transfers"] as! [[String: Any]]
        transfers[0]["stage"] = nil
        json["transfers"] = transfers
        let older = try NodeStatus.decode(try JSONSerialization.data(withJSONObject: json))
        XCTAssertNil(older.transfers[0].stage)
    }
}
