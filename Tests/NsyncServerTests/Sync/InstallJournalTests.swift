import Foundation
import XCTest
@testable import NsyncServer

/// The install journal: what it records survives a torn tail, and a restart
/// takes from it only files that are still exactly the ones installed.
final class InstallJournalTests: XCTestCase {
    private func entry(_ path: String, version: UInt64, inode: UInt64 = 7) -> InstallJournal.Entry {
        InstallJournal.Entry(path: path, version: version, local: LocalFile(
            kind: .file, size: 3, mode: 0o644, mtime: 1_000_000_000_123_456_789,
            hash: SHA256.hash(Array("abc".utf8)), inode: inode))
    }

    func testEntriesRoundTripAndATornOrDamagedTailEndsTheJournal() {
        let entries = [entry("a.txt", version: 5), entry("dir/ü b.bin", version: 9), entry("c", version: 12)]
        let bytes = InstallJournal.encode(entries)
        XCTAssertEqual(InstallJournal.decode(bytes), entries)
        XCTAssertEqual(InstallJournal.decode([]), [])

        let second = InstallJournal.encode([entries[1]]).count
        let firstEnd = InstallJournal.encode([entries[0]]).count
        for cut in [bytes.count - 1, firstEnd + second - 1, firstEnd + 3] {
            XCTAssertEqual(InstallJournal.decode(Array(bytes[..<cut])), Array(entries.prefix(cut >= firstEnd + second ? 2 : 1)),
                           "cut at \(cut) of \(bytes.count)")
        }
        var damaged = bytes
        damaged[firstEnd + 6] ^= 0x40
        XCTAssertEqual(InstallJournal.decode(damaged), [entries[0]], "nothing after a damaged record is trusted")
    }

    func testReplayTakesOnlyFilesThatAreStillTheOnesInstalled() throws {
        let scratch = try SyncScratchDirectory("journal")
        let root = scratch.path
        func installed(_ path: String, _ text: String) throws -> InstallJournal.Entry {
            try scratch.write(path, text)
            let status = try FileSystem.status(root + "/" + path)
            return InstallJournal.Entry(path: path, version: 0, local: LocalFile(
                kind: .file, size: UInt64(status.size), mode: status.mode, mtime: status.modificationTime,
                hash: SHA256.hash(Array(text.utf8)), inode: status.inode))
        }
        var kept = try installed("kept.txt", "installed")
        kept.version = 40
        var edited = try installed("edited.txt", "installed")
        edited.version = 41
        try scratch.write("edited.txt", "the user's edit, longer")
        var never = edited
        never.path = "never-renamed.txt"
        var older = try installed("older.txt", "installed")
        older.version = 10
        let journal = root + "/installs"
        try InstallJournal.append([kept, edited], to: journal)
        try InstallJournal.append([never, older], to: journal)

        var manifest = PathMap<ManifestEntry>()
        manifest["kept.txt"] = ManifestEntry(version: 3, local: nil)
        manifest["older.txt"] = ManifestEntry(version: 20, local: nil)
        manifest["edited.txt"] = ManifestEntry(version: 4, local: nil)
        var gone: [InstallJournal.Entry] = []
        XCTAssertEqual(InstallJournal.replay(journal, root: root, onto: &manifest, gone: &gone), 1)
        XCTAssertEqual(gone, [never], "a path with nothing is set aside for the index to judge (held there: removed since)")

        XCTAssertEqual(manifest["kept.txt"], ManifestEntry(version: 40, local: kept.local))
        XCTAssertEqual(manifest["edited.txt"], ManifestEntry(version: 4, local: nil), "a later edit is the user's")
        XCTAssertNil(manifest["never-renamed.txt"], "no file, no entry")
        XCTAssertEqual(manifest["older.txt"]?.version, 20, "a newer manifest entry stays")

        try InstallJournal.clear(journal)
        gone = []
        XCTAssertEqual(InstallJournal.replay(journal, root: root, onto: &manifest, gone: &gone), 0)
        XCTAssertEqual(gone, [], "an emptied journal sets nothing aside")
    }
}
