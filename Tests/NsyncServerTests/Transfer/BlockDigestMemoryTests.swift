import XCTest
@testable import NsyncServer

/// The block digests a node remembers between edits in place: worked out
/// from the pieces of a block fetch (held blocks keep their digests,
/// received ones are hashed), equal to hashing the new version's blocks;
/// anything out of order gives nothing; the memory is bounded.
final class BlockDigestMemoryTests: XCTestCase {
    private let block = 128 << 10

    private func bytes(_ count: Int, seed: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ seed &+ $0 >> 11) }
    }

    private func digests(of content: [UInt8]) -> BlockDigests {
        var all: [UInt8] = []
        for start in stride(from: 0, to: content.count, by: block) {
            all += SHA256.hash(Array(content[start..<min(start + block, content.count)]))
        }
        return BlockDigests(blockSize: UInt32(block), digests: all)
    }

    func testDigestsOfAVersionFetchedByBlocksEqualHashingIt() {
        let old = bytes(10 * block + 500, seed: 1)
        // Block 3 and the short tail differ; one block shorter.
        var new = Array(old[..<(9 * block + 77)])
        new.replaceSubrange((3 * block)..<(4 * block), with: bytes(block, seed: 9))
        new.replaceSubrange((9 * block)..., with: bytes(77, seed: 5))
        let builder = BlockDigestBuilder(held: digests(of: old), newSize: UInt64(new.count))
        // As they come: held blocks 0-2, block 3 in three uneven data frames
        // over two write jobs, held 4-8, the tail as data.
        builder.add([.held(0, UInt64(3 * block)),
                     .bytes(UInt64(3 * block), new[(3 * block)..<(3 * block + 1_000)])])
        XCTAssertNil(builder.result, "not every byte yet")
        builder.add([.bytes(UInt64(3 * block + 1_000), new[(3 * block + 1_000)..<(3 * block + 70_000)]),
                     .bytes(UInt64(3 * block + 70_000), new[(3 * block + 70_000)..<(4 * block)]),
                     .held(UInt64(4 * block), UInt64(5 * block)),
                     .bytes(UInt64(9 * block), new[(9 * block)...])])
        XCTAssertEqual(builder.result, digests(of: new))
    }

    func testAGapOrAHeldRunOffABlockGivesNothing() {
        let old = bytes(4 * block, seed: 2)
        let held = digests(of: old)
        let gap = BlockDigestBuilder(held: held, newSize: UInt64(old.count))
        gap.add([.held(0, UInt64(block)), .held(UInt64(2 * block), UInt64(2 * block))])
        XCTAssertNil(gap.result)
        let off = BlockDigestBuilder(held: held, newSize: UInt64(old.count))
        off.add([.bytes(0, old[..<100]), .held(100, UInt64(4 * block - 100))])
        XCTAssertNil(off.result)
        let whole = BlockDigestBuilder(held: held, newSize: UInt64(old.count))
        whole.add([.held(0, UInt64(4 * block))])
        XCTAssertEqual(whole.result, held, "all the same: the held version's digests")
    }

    func testDataAcrossSeveralBlocksAndAHeldShortTail() {
        let old = bytes(5 * block + 300, seed: 3)
        var new = old
        new.replaceSubrange(100..<(3 * block + 50), with: bytes(3 * block - 50, seed: 7))
        let builder = BlockDigestBuilder(held: digests(of: old), newSize: UInt64(new.count))
        // Blocks 0-3 as one data piece, 4 and the short tail the same.
        builder.add([.bytes(0, new[..<(4 * block)]), .held(UInt64(4 * block), UInt64(block + 300))])
        XCTAssertEqual(builder.result, digests(of: new))
        let repeated = BlockDigestBuilder(held: digests(of: old), newSize: UInt64(new.count))
        repeated.add([.bytes(0, new[..<block]), .bytes(0, new[..<block])])
        repeated.add([.bytes(UInt64(block), new[block..<(4 * block)]), .held(UInt64(4 * block), UInt64(block + 300))])
        XCTAssertNil(repeated.result, "a piece written twice")
    }

    func testForgettingAVersionDropsItInEveryBlockSize() {
        var memory = BlockDigestMemory()
        let hash = [UInt8](repeating: 7, count: SHA256.digestLength)
        memory.remember(BlockDigests(blockSize: UInt32(block), digests: [UInt8](repeating: 1, count: 64)), for: hash)
        memory.remember(BlockDigests(blockSize: UInt32(2 * block), digests: [UInt8](repeating: 2, count: 32)), for: hash)
        memory.forget(hash)
        XCTAssertEqual(memory.count, 0)
        XCTAssertEqual(memory.bytes, 0)
    }

    func testTheMemoryIsBoundedAndForgetsTheLeastRecentlyUsed() {
        var memory = BlockDigestMemory()
        let perEntry = BlockDigestMemory.limit / 4 - BlockDigestMemory.entryOverhead
        let entry = { (n: Int) in BlockDigests(blockSize: UInt32(self.block), digests: [UInt8](repeating: UInt8(n), count: perEntry)) }
        let hash = { (n: Int) in [UInt8](repeating: UInt8(n), count: SHA256.digestLength) }
        for n in 0..<4 { memory.remember(entry(n), for: hash(n)) }
        XCTAssertEqual(memory.count, 4)
        XCTAssertNotNil(memory.digests(for: hash(0), blockSize: UInt32(block)), "0 used: now the most recent")
        memory.remember(entry(4), for: hash(4))
        XCTAssertEqual(memory.count, 4)
        XCTAssertNil(memory.digests(for: hash(1), blockSize: UInt32(block)), "1 was the least recently used")
        XCTAssertNotNil(memory.digests(for: hash(0), blockSize: UInt32(block)))
        XCTAssertNil(memory.digests(for: hash(0), blockSize: UInt32(2 * block)), "other blocks, other digests")
        XCTAssertLessThanOrEqual(memory.bytes, BlockDigestMemory.limit)
        memory.remember(entry(9), for: [1, 2, 3])
        XCTAssertNil(memory.digests(for: [1, 2, 3], blockSize: UInt32(block)), "not a SHA-256: not kept")
    }
}
