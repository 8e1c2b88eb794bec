import XCTest
@testable import NsyncServer

final class IndexPathTests: XCTestCase {
    func testOrdinaryRelativePathsAreReturnedUnchanged() throws {
        let decomposed = "cafe\u{301}/na\u{308}ive.txt"
        for path in [
            "a", "a/b/c.txt", "dir with spaces/ü ñ 日本.txt", "...", "a/.../b", ".hidden/.x",
            ".nsyncx", ".nsync.bak/f", "x/.nsync", "x/.nsync/y", "tab\there", "a\u{1}b\u{7F}",
            decomposed, String(repeating: "n", count: 255),
        ] {
            let validated = try IndexPath.validate(path)
            XCTAssertTrue(validated.utf8.elementsEqual(path.utf8), "rewritten: \(path)")
        }
    }

    func testLongestAllowedPathAndComponent() throws {
        let exact = String(repeating: "a/", count: 2047) + "bb"  // 4096 bytes
        XCTAssertEqual(exact.utf8.count, 4096)
        XCTAssertNoThrow(try IndexPath.validate(exact))
        XCTAssertEqual(IndexPath.violation(in: exact + "b"), .tooLong(path: exact + "b", bytes: 4097))
        let long = "d/" + String(repeating: "é", count: 128)  // a 256-byte component
        XCTAssertEqual(IndexPath.violation(in: long), .componentTooLong(path: long, bytes: 256))
    }

    func testEscapingAbsoluteAndEmptyPathsAreRefused() {
        let cases: [(String, IndexPathError)] = [
            ("", .empty),
            ("/etc/passwd", .absolute(path: "/etc/passwd")),
            ("/", .absolute(path: "/")),
            ("a//b", .emptyComponent(path: "a//b")),
            ("a/", .emptyComponent(path: "a/")),
            (".", .dotComponent(path: ".")),
            ("./a", .dotComponent(path: "./a")),
            ("a/./b", .dotComponent(path: "a/./b")),
            ("..", .dotComponent(path: "..")),
            ("../a", .dotComponent(path: "../a")),
            ("a/../../b", .dotComponent(path: "a/../../b")),
            ("a/..", .dotComponent(path: "a/..")),
            ("a\u{0}b", .containsNUL(path: "a\u{0}b")),
        ]
        for (path, error) in cases {
            XCTAssertEqual(IndexPath.violation(in: path), error, "\(path.debugDescription)")
            XCTAssertThrowsError(try IndexPath.validate(path))
        }
    }

    func testStateDirectoryIsNeverAnIndexPath() {
        for path in [".nsync", ".nsync/raft.log", ".nsync/tmp/x", ".nsync/\u{301}x"] {
            // The last one: a combining mark after the '/' makes Swift's String
            // see ".nsync/\u{301}" as one Character; the check must be by bytes.
            XCTAssertEqual(IndexPath.violation(in: path), .insideStateDirectory(path: path), path.debugDescription)
        }
    }

    func testDescriptionsNameThePathAndEscapeControlCharacters() {
        let description = IndexPathError.dotComponent(path: "a\n/../b").description
        XCTAssertTrue(description.contains("\"a\\n/../b\""), description)
        XCTAssertTrue(IndexPathError.insideStateDirectory(path: ".nsync/x").description.contains("never synced"))
    }
}
