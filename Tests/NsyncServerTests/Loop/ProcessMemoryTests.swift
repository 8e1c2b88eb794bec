import Foundation
@testable import NsyncServer
import XCTest

final class ProcessMemoryTests: XCTestCase {
    /// Resident bytes of this process, from /proc/self/status.
    private func residentBytes() throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
        let kilobytes = try XCTUnwrap(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
        return kilobytes * 1024
    }

    func testFreedMemoryBetweenLiveAllocationsGoesBackToTheKernel() throws {
        // 96 MiB of small blocks, every 64th kept alive: free() alone keeps
        // the pages between them resident (nothing is free at the heap's top).
        let blockSize = 512
        let count = 96 << 20 / blockSize
        var blocks: [UnsafeMutableRawPointer] = []
        blocks.reserveCapacity(count)
        for _ in 0..<count {
            let block = UnsafeMutableRawPointer.allocate(byteCount: blockSize, alignment: 16)
            block.initializeMemory(as: UInt8.self, repeating: 0xA5, count: blockSize)
            blocks.append(block)
        }
        var kept: [UnsafeMutableRawPointer] = []
        for (i, block) in blocks.enumerated() {
            if i % 64 == 0 { kept.append(block) } else { block.deallocate() }
        }
        blocks = []
        defer { for block in kept { block.deallocate() } }
        let before = try residentBytes()
        ProcessMemory.releaseFreeMemory()
        let after = try residentBytes()
        print("resident: \(before >> 20) MiB before the release, \(after >> 20) MiB after")
        XCTAssertGreaterThan(before - after, 48 << 20, "at least half of the 94 MiB freed goes back")
    }
}
