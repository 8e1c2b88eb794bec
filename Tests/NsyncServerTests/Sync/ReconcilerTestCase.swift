import XCTest
@testable import NsyncServer

/// Shared fixture of the reconciler unit tests: this node is "n1"; "n2" is a
/// remote node whose commands are committed (applied to n1's index copy)
/// directly. XCTest makes a fresh instance, hence fixture, for every test.
class ReconcilerTestCase: XCTestCase {
    var reconciler = Reconciler(node: "n1")
    var index = FileIndex()
    var nextEntry: UInt64 = 1

    func hash(_ byte: UInt8) -> [UInt8] { [UInt8](repeating: byte, count: 32) }

    func file(_ byte: UInt8, size: UInt64 = 10, mode: UInt32 = 0o644, mtime: Int64 = 100, inode: UInt64 = 1) -> LocalFile {
        LocalFile(kind: .file, size: size, mode: mode, mtime: mtime, hash: hash(byte), inode: inode)
    }

    func directory(mode: UInt32 = 0o755, mtime: Int64 = 100, inode: UInt64 = 50) -> LocalFile {
        LocalFile(kind: .directory, mode: mode, mtime: mtime, inode: inode)
    }

    func put(_ path: String, _ local: LocalFile?, base: UInt64) -> IndexChange {
        guard let local else { return .put(.deletion(path, mtime: 0, base: base)) }
        return .put(PutChange(path: path, kind: local.kind, size: local.size, mode: local.mode, mtime: local.mtime,
                              hash: local.hash, target: local.target, baseVersion: base))
    }

    /// Commits `changes` from `origin` as the next entry and returns what n1's reconciler asks for.
    @discardableResult
    func commit(_ origin: NodeName, _ changes: [IndexChange]) -> (outcomes: [ChangeOutcome], actions: [SyncAction]) {
        let command = IndexCommand(origin: origin, changes: changes)
        let outcomes = index.apply(command, at: nextEntry)
        nextEntry += 1
        return (outcomes, reconciler.applied(command, outcomes: outcomes, index: index))
    }

    /// Commits n1's outbox as one command.
    @discardableResult
    func commitOutbox() -> (outcomes: [ChangeOutcome], actions: [SyncAction]) {
        commit("n1", reconciler.takeOutbox())
    }

    /// Makes n1 hold `local` at `path` as the committed version (origin n2, fetched and installed by n1).
    @discardableResult
    func installRemote(_ path: String, _ local: LocalFile) -> UInt64 {
        let version = nextEntry
        let (_, actions) = commit("n2", [put(path, local, base: index.record(at: path)?.version ?? 0)])
        XCTAssertEqual(actions.count, 1, "\(actions)")
        XCTAssertTrue(reconciler.installed(path, version: version, local: local, index: index).isEmpty)
        commitOutbox()  // the hold
        XCTAssertEqual(index.record(at: path)?.holders, ["n1", "n2"])
        XCTAssertFalse(reconciler.hasPendingWork)
        return version
    }
}
