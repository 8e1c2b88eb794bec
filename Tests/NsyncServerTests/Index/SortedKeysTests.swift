import XCTest
@testable import NsyncServer

/// The chunked sorted key list under FileIndex's path order, against a
/// plain sorted array: inserts and removals in random order split and merge
/// chunks, and the keys always come back in byte order.
final class SortedKeysTests: XCTestCase {
    private func key(_ n: UInt64) -> PathKey {
        // Shared prefixes (like the paths of one folder), and some non-ASCII names.
        PathKey("dir\(n % 37)/\(n % 5 == 0 ? "é" : "e")-\(n)")
    }

    func testRandomInsertsAndRemovalsKeepByteOrderAcrossSplitsAndMerges() {
        var random = SystemRandomNumberGenerator()
        var keys = SortedKeys()
        var reference = Set<PathKey>()
        for round in 0..<40_000 {
            let n = UInt64.random(in: 0..<6_000, using: &random)
            let k = key(n)
            // Grow for the first half (chunks split), then mostly shrink (chunks merge and empty).
            let inserting = round < 20_000 ? Int.random(in: 0..<4, using: &random) > 0 : Int.random(in: 0..<4, using: &random) == 0
            if inserting, !reference.contains(k) {
                keys.insert(k)
                reference.insert(k)
            } else if !inserting {
                XCTAssertEqual(keys.remove(k), reference.remove(k) != nil)
            }
            XCTAssertEqual(keys.count, reference.count)
        }
        let sorted = reference.sorted()
        XCTAssertGreaterThan(sorted.count, 0)
        XCTAssertEqual(Array(keys), sorted)
        XCTAssertEqual(keys.last, sorted.last)
        for key in sorted { keys.remove(key) }
        XCTAssertTrue(keys.isEmpty)
        XCTAssertEqual(Array(keys), [])
        XCTAssertNil(keys.last)
    }

    func testByteOrderPutsUppercaseAndASCIIBeforeNonASCII() {
        var keys = SortedKeys()
        for path in ["é", "e", "Z", "a/b", "a", "a b", "a/é", "a/e"] { keys.insert(PathKey(path)) }
        XCTAssertEqual(keys.map(\.path), ["Z", "a", "a b", "a/b", "a/e", "a/é", "e", "é"])
    }

    func testKeysFromAKeyStartAtTheFirstNotBelowIt() {
        var keys = SortedKeys()
        for n in 0..<5_000 { keys.insert(PathKey(String(format: "f%05d", n * 2))) }
        var from = keys.keys(from: PathKey("f04001"))
        XCTAssertEqual(from.next()?.path, "f04002", "an absent key: the next one")
        from = keys.keys(from: PathKey("f04002"))
        XCTAssertEqual(from.next()?.path, "f04002", "a held key: itself")
        XCTAssertEqual(from.next()?.path, "f04004")
        from = keys.keys(from: PathKey("g"))
        XCTAssertNil(from.next(), "above every key")
        from = keys.keys(from: PathKey(""))
        XCTAssertEqual(from.next()?.path, "f00000")
        var empty = SortedKeys().keys(from: PathKey("a"))
        XCTAssertNil(empty.next())
    }

    func testEqualityIsByKeysNotByChunking() {
        var appended = SortedKeys()
        var inserted = SortedKeys()
        let all = (0..<3_000).map { PathKey(String(format: "k%05d", $0)) }
        for key in all { appended.append(key) }
        for key in all.reversed() { inserted.insert(key) }
        XCTAssertEqual(appended, inserted)
        inserted.remove(all[1_500])
        XCTAssertNotEqual(appended, inserted)
        XCTAssertFalse(inserted.remove(all[1_500]), "already gone")
    }
}
