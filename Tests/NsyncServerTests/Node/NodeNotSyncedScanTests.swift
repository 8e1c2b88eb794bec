import Foundation
import Logging
import XCTest
@testable import NsyncServer

/// `Node.noteNotSynced(below:_:scanBegan:)` checks what a scan found with a
/// stat: gone since the walk (or a special file replaced by a file) is
/// dropped, what cannot be stat'ed either stays listed.
final class NodeNotSyncedScanTests: XCTestCase {
    static let nobody: UInt32 = 65534

    func withFSUID<T>(_ uid: UInt32, _ body: () throws -> T) throws -> T {
        guard getuid() == 0 else { return try body() }
        typealias SetFSUID = @convention(c) (UInt32) -> Int32
        guard let symbol = dlsym(nil, "setfsuid") else { throw XCTSkip("no setfsuid in libc") }
        let setfsuid = unsafeBitCast(symbol, to: SetFSUID.self)
        _ = setfsuid(uid)
        defer { _ = setfsuid(0) }
        return try body()
    }

    /// A node (not started: nothing else touches its list) on a fresh root.
    func makeNode() throws -> (Node, String, EventLoop) {
        let root = NSTemporaryDirectory() + "notsynced-scan-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let config = try NodeConfig.node1OfThree(root: root)
        let loop = try EventLoop()
        var logger = Logger(label: "notsynced-scan")
        logger.logLevel = .critical
        return (try Node(config: config, loop: loop, logger: logger), root, loop)
    }

    /// A directory the daemon may list but not search (root's, 0744, the
    /// daemon running as another user): the scan reports each entry in it
    /// as unreadable (EACCES from lstat); the stat that tells "gone since
    /// the walk" fails with that very EACCES, which must not drop them.
    func testEntriesThatCannotBeStatedAreListed() throws {
        let (node, root, loop) = try makeNode()
        defer { loop.close(); try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/half", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: root + "/half/f.txt", contents: Data("x".utf8))
        XCTAssertEqual(chmod(root + "/half", 0o744), 0)
        try withFSUID(Self.nobody) {
            let began = node.sync.notSynced.scanBegins()
            let scan = try DirectoryScanner.scan(root: root, ignore: .defaults)
            XCTAssertEqual(scan.skipped.map(\.path), ["half/f.txt"], "the walk reports it")
            node.noteNotSynced(below: "", scan.skipped, scanBegan: began)
        }
        XCTAssertNotNil(node.sync.notSynced["half/f.txt"], "dropped by the stat check: \(node.sync.notSynced.first(10))")
    }

    /// A FIFO the walk found, replaced by a regular file before the scan
    /// ends (the watcher's removal and the look both come before the
    /// completion): not listed again as a special file.
    func testASpecialFileReplacedByAFileDuringTheWalkIsNotListed() throws {
        let (node, root, loop) = try makeNode()
        defer { loop.close(); try? FileManager.default.removeItem(atPath: root) }
        XCTAssertEqual(mkfifo(root + "/x", 0o600), 0)
        let began = node.sync.notSynced.scanBegins()
        let scan = try DirectoryScanner.scan(root: root, ignore: .defaults)
        XCTAssertEqual(scan.skipped.map(\.path), ["x"])
        // Meanwhile: rm x; echo > x — the watcher's removal, then the look.
        XCTAssertEqual(unlink(root + "/x"), 0)
        FileManager.default.createFile(atPath: root + "/x", contents: Data("now a file\n".utf8))
        node.sync.notSynced.remove("x")
        _ = node.sync.notSynced.looked("x", isDirectory: false)
        node.noteNotSynced(below: "", scan.skipped, scanBegan: began)
        XCTAssertNil(node.sync.notSynced["x"], "a regular file listed as a special file")
    }
}
