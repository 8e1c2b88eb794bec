import XCTest
@testable import NsyncServer

final class ConflictNameTests: XCTestCase {
    /// 2024-03-05 07:08:09 UTC.
    private let march5 = Int64(1_709_622_489)

    private func name(_ path: String, node: NodeName = "n1") -> String {
        ConflictName.conflictCopyName(for: path, secondsSinceEpoch: march5, node: node)
    }

    func testTheMarkerGoesBeforeTheExtension() {
        XCTAssertEqual(name("notes.txt"), "notes.sync-conflict-20240305-070809-n1.txt")
        XCTAssertEqual(name("archive.tar.gz"), "archive.tar.sync-conflict-20240305-070809-n1.gz")
        XCTAssertEqual(name("docs/sub/report.v2.pdf"), "docs/sub/report.v2.sync-conflict-20240305-070809-n1.pdf")
    }

    func testNamesWithoutAnExtension() {
        XCTAssertEqual(name("Makefile"), "Makefile.sync-conflict-20240305-070809-n1")
        XCTAssertEqual(name(".bashrc"), ".bashrc.sync-conflict-20240305-070809-n1", "a leading dot is not an extension")
        XCTAssertEqual(name("a.b/c"), "a.b/c.sync-conflict-20240305-070809-n1", "a dot in a directory is not an extension")
        XCTAssertEqual(name("odd."), "odd.sync-conflict-20240305-070809-n1.")
    }

    func testDotfilesWithAnotherDotKeepTheirExtension() {
        XCTAssertEqual(name(".config.yml"), ".config.sync-conflict-20240305-070809-n1.yml")
        XCTAssertEqual(name("d/..hidden"), "d/..sync-conflict-20240305-070809-n1.hidden")
    }

    func testUnicodeNamesAndNodeNamesThatCannotBeInAFileName() {
        XCTAssertEqual(name("Données/résumé.pdf", node: "nœud-2"), "Données/résumé.sync-conflict-20240305-070809-nœud-2.pdf")
        XCTAssertEqual(name("x.txt", node: "a/b"), "x.sync-conflict-20240305-070809-a_b.txt")
    }

    func testTimestampsAreUTCCalendarDates() {
        XCTAssertEqual(ConflictName.timestamp(0), "19700101-000000")
        XCTAssertEqual(ConflictName.timestamp(951_868_799), "20000229-235959")
        XCTAssertEqual(ConflictName.timestamp(-1), "19691231-235959")
        XCTAssertEqual(ConflictName.timestamp(4_107_542_400), "21000301-000000")
        XCTAssertEqual(ConflictName.timestamp(253_402_300_799), "99991231-235959")
    }

    func testALongNameIsShortenedAtACharacterBoundaryToFit255Bytes() {
        let stem = String(repeating: "é", count: 125) // 250 bytes
        let copy = name("dir/" + stem + ".txt")
        XCTAssertTrue(copy.hasPrefix("dir/é"))
        let component = String(copy.dropFirst(4))
        XCTAssertLessThanOrEqual(component.utf8.count, 255)
        XCTAssertGreaterThan(component.utf8.count, 250)
        XCTAssertTrue(component.hasSuffix(".sync-conflict-20240305-070809-n1.txt"))
        XCTAssertNotNil(String(validating: Array(component.utf8), as: UTF8.self))

        let hugeExtension = "f." + String(repeating: "e", count: 250)
        XCTAssertLessThanOrEqual(name(hugeExtension).utf8.count, 255)
        XCTAssertLessThanOrEqual(name("x", node: String(repeating: "n", count: 300)).utf8.count, 255)
    }

    func testConflictCopiesAreRecognised() {
        for path in ["notes.txt", ".bashrc", "Makefile", "d/archive.tar.gz", String(repeating: "é", count: 125) + ".txt"] {
            XCTAssertTrue(ConflictName.isConflictCopy(name(path)), name(path))
            XCTAssertFalse(ConflictName.isConflictCopy(path), path)
        }
        XCTAssertFalse(ConflictName.isConflictCopy("x.sync-conflict-2024-.txt"))
        XCTAssertFalse(ConflictName.isConflictCopy("x.sync-conflict-20240305-070809-"))
        XCTAssertFalse(ConflictName.isConflictCopy("d.sync-conflict-20240305-070809-n1/plain.txt"))
        XCTAssertTrue(ConflictName.isConflictCopy("a.sync-conflict-x.sync-conflict-20240305-070809-n1"))
    }
}
