import Foundation
import XCTest
@testable import NsyncServer

/// `.nsync/kept`: the directories a node keeps for the ignored files they
/// hold, and what tells each from a directory made later under its name.
final class KeptDirectoriesTests: XCTestCase {
    func testTheListSurvivesASaveAndLoadWithAnyNameAndGoesWhenEmpty() throws {
        let dir = try SyncScratchDirectory("kept")
        XCTAssertEqual(mkdir(dir.url(".nsync"), 0o700), 0)
        let kept = [
            "proj": KeptDirectories.Identity(inode: 12, birth: 1_795_702_071_606_107_733),
            "a b/with\nnewline": KeptDirectories.Identity(inode: 13, birth: 0),
            "ünï/cödé": KeptDirectories.Identity(inode: UInt64.max, birth: -5),
        ]
        try KeptDirectories.save(kept, root: dir.path)
        XCTAssertEqual(KeptDirectories.load(root: dir.path), kept)

        try KeptDirectories.save([:], root: dir.path)
        XCTAssertFalse(FileManager.default.fileExists(atPath: KeptDirectories.path(root: dir.path)))
        XCTAssertEqual(KeptDirectories.load(root: dir.path), [:])
    }

    func testHostileEntriesAreSkipped() throws {
        let dir = try SyncScratchDirectory("kept")
        XCTAssertEqual(mkdir(dir.url(".nsync"), 0o700), 0)
        let text = "1 2 ../escape\0x y z\0 3 4\0" + "5 6 .nsync/raft\0" + "7 8 good\0" + "9 10 /absolute\0"
        FileManager.default.createFile(atPath: KeptDirectories.path(root: dir.path), contents: Data(text.utf8))
        XCTAssertEqual(KeptDirectories.load(root: dir.path), ["good": KeptDirectories.Identity(inode: 7, birth: 8)])
    }

    /// `rm -rf d; mkdir d` may get the same inode number (ext4 reuses them);
    /// the birth time tells the new directory from the kept one.
    func testADirectoryMadeAgainUnderTheSameNameHasAnotherBirthTime() throws {
        let dir = try SyncScratchDirectory("kept")
        let loop = try EventLoop()
        defer { loop.close() }
        XCTAssertEqual(mkdir(dir.url("d"), 0o755), 0)
        let first = try XCTUnwrap(loop.birthTime(of: dir.url("d")))
        XCTAssertEqual(loop.birthTime(of: dir.url("d")), first, "the same directory, the same birth time")
        try dir.write("d/ignored.o", "x")
        XCTAssertEqual(loop.birthTime(of: dir.url("d")), first, "an entry added does not change it")
        usleep(2_000)
        try FileManager.default.removeItem(atPath: dir.url("d"))
        XCTAssertEqual(mkdir(dir.url("d"), 0o755), 0)
        XCTAssertNotEqual(loop.birthTime(of: dir.url("d")), first, "made again: another birth time")
        XCTAssertNil(loop.birthTime(of: dir.url("missing")))
    }
}
