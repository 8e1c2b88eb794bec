import XCTest
import Foundation
@testable import NsyncServer

/// Cases mirror the examples of git's gitignore documentation and wildmatch tests.
final class IgnoreRulesTests: XCTestCase {
    private func check(_ text: String, _ cases: [(String, Bool, Bool)], file: StaticString = #filePath, line: UInt = #line) {
        let rules = IgnoreRules(text: text)
        for (path, isDirectory, expected) in cases {
            XCTAssertEqual(rules.isIgnored(path: path, isDirectory: isDirectory), expected,
                           "rules \(text.debugDescription): \(path)\(isDirectory ? "/" : "") should \(expected ? "" : "not ")be ignored",
                           file: file, line: line)
        }
    }

    func testPatternWithoutSlashMatchesTheNameAtAnyDepth() {
        check("*.tmp", [("a.tmp", false, true), ("d/e/a.tmp", false, true), ("a.tmpx", false, false),
                        ("tmp", false, false), ("d.tmp", true, true), ("d.tmp/inside.c", false, true)])
        check("frotz", [("frotz", false, true), ("a/frotz", true, true), ("a/frotz/x", false, true), ("frotzz", false, false)])
    }

    func testTrailingSlashMatchesDirectoriesOnly() {
        check("build/", [("build", true, true), ("build", false, false), ("src/build", true, true),
                         ("build/x.o", false, true), ("src/build/deep/x.o", false, true), ("builder", true, false)])
    }

    func testLeadingOrMiddleSlashAnchorsToTheTop() {
        check("/build", [("build", true, true), ("build", false, true), ("src/build", true, false)])
        check("doc/frotz/", [("doc/frotz", true, true), ("a/doc/frotz", true, false), ("doc/frotz", false, false)])
        check("doc/frotz", [("doc/frotz", false, true), ("x/doc/frotz", false, false)])
    }

    func testStarAndQuestionMarkDoNotCrossSlashes() {
        check("foo/*", [("foo/test.json", false, true), ("foo/bar", true, true),
                        ("foo/bar/hello.c", false, true) /* through its ignored parent */, ("foo", true, false)])
        check("a*b", [("ab", false, true), ("axxb", false, true), ("x/ab", false, true)])
        check("x/a*b", [("x/ab", false, true), ("x/a/b", false, false)])
        check("?", [("a", false, true), ("ab", false, false), ("d/a", false, true)])
        check("a?c", [("abc", false, true), ("ac", false, false)])
        check("x/a?c", [("x/a/c", false, false)])
    }

    func testDoubleStarSpansDirectories() {
        check("**/foo", [("foo", false, true), ("a/foo", false, true), ("a/b/foo", true, true), ("afoo", false, false)])
        check("**/foo/bar", [("foo/bar", false, true), ("x/y/foo/bar", false, true), ("foo/x/bar", false, false)])
        check("abc/**", [("abc/x", false, true), ("abc/x/y", false, true), ("abc", true, false)])
        check("a/**/b", [("a/b", false, true), ("a/x/b", false, true), ("a/x/y/b", false, true),
                         ("a/xb", false, false), ("b", false, false)])
        // "**" not alone between slashes is an ordinary "*".
        check("**foo", [("xfoo", false, true), ("foo", false, true), ("a/xfoo", false, true)])
        check("x/**foo", [("x/afoo", false, true), ("x/a/foo", false, false)])
    }

    func testNegationLastMatchWins() {
        check("*.tmp\n!keep.tmp", [("a.tmp", false, true), ("keep.tmp", false, false), ("d/keep.tmp", false, false)])
        check("!keep.tmp\n*.tmp", [("keep.tmp", false, true)])
        check("build/*\n!build/keep", [("build/keep", false, false), ("build/other", false, true)])
    }

    func testAFileBelowAnIgnoredDirectoryCannotBeReincluded() {
        check("build/\n!build/keep", [("build/keep", false, true)])
        check("build\n!build/keep\n!build/", [("build/keep", false, false)]) // the directory itself re-included
    }

    func testCommentsBlankLinesEscapesAndTrailingSpaces() {
        check("# a comment\n\n   \n", [("# a comment", false, false), ("a", false, false)])
        check("\\#file", [("#file", false, true), ("file", false, false)])
        check("\\!important", [("!important", false, true), ("important", false, false)])
        check("foo   ", [("foo", false, true), ("foo   ", false, false)])
        check("foo\\ ", [("foo ", false, true), ("foo", false, false)])
        check("a\\*b", [("a*b", false, true), ("axb", false, false)])
        check("*.log\r\n!x.log\r\n", [("a.log", false, true), ("x.log", false, false)])
    }

    func testCharacterClasses() {
        check("[abc].txt", [("a.txt", false, true), ("d.txt", false, false)])
        check("[!a].txt", [("b.txt", false, true), ("a.txt", false, false)])
        check("[^a].txt", [("b.txt", false, true), ("a.txt", false, false)])
        check("file[0-9]", [("file7", false, true), ("filex", false, false), ("file", false, false)])
        check("[]]x", [("]x", false, true), ("ax", false, false)])
        check("[a-]x", [("-x", false, true), ("ax", false, true), ("bx", false, false)])
        check("[[:digit:]]*", [("1abc", false, true), ("abc", false, false)])
        check("[[:upper:][:digit:]]", [("A", false, true), ("5", false, true), ("a", false, false)])
        check("[\\]]", [("]", false, true)])
        check("[unterminated", [("u", false, false), ("[unterminated", false, false)])
        check("a[/]b", [("a/b", false, false)])
    }

    func testMatchingIsPerCharacterForUnicodeNames() {
        check("r?sum?.txt", [("résumé.txt", false, true)])
        check("[é]", [("é", false, true), ("e", false, false)])
        check("日本/*", [("日本/語", false, true)])
    }

    func testEditorSwapAndBackupFilesAreIgnoredByDefaultButCanBeReincluded() {
        check("", [(".notes.txt.swp", false, true), ("d/.x.swp", false, true), ("draft~", false, true),
                   (".#lock", false, true), ("x.swp", false, false), ("notes.txt", false, false)])
        check("!*~", [("draft~", false, false), (".a.swp", false, true)])
    }

    func testStateDirectoryIsAlwaysIgnoredAndTheIgnoreFileAlwaysSynced() {
        check("!.nsync\n!.nsync/\n!.nsync/**", [(".nsync", true, true), (".nsync", false, true),
                                               (".nsync/raft.log", false, true), ("sub/.nsync", true, true),
                                               ("sub/.nsync/x", false, true), ("sub/.nsync", false, false)])
        check("*\n.*", [(".nsyncignore", false, false), ("sub/.nsyncignore", false, true), ("a", false, true)])
    }

    func testStarAloneIgnoresEverythingAndEmptyPathIsNeverIgnored() {
        check("*", [("a", false, true), ("d", true, true), ("d/x", false, true)])
        XCTAssertFalse(IgnoreRules(text: "*").isIgnored(path: "", isDirectory: true))
    }

    func testIsIgnoredEntryLooksOnlyAtThePathItself() {
        let rules = IgnoreRules(text: "build/")
        XCTAssertFalse(rules.isIgnoredEntry(path: "build/x.o", isDirectory: false))
        XCTAssertTrue(rules.isIgnored(path: "build/x.o", isDirectory: false))
    }

    /// wildmatch must terminate quickly on adversarial patterns (git limits
    /// backtracking with its abort codes; so do we).
    func testPathologicalStarsStayFast() {
        let rules = IgnoreRules(text: "a*a*a*a*a*a*a*a*a*a*a*b\n**/**/**/**/**/**/x")
        let start = Date()
        XCTAssertFalse(rules.isIgnored(path: String(repeating: "a", count: 60), isDirectory: false))
        XCTAssertFalse(rules.isIgnored(path: Array(repeating: "d", count: 40).joined(separator: "/") + "/y", isDirectory: false))
        XCTAssertLessThan(Date().timeIntervalSince(start), 2.0)
    }
}
