import Foundation
import XCTest
@testable import NsyncServer

final class TLSBenchmarkTests: XCTestCase {
    func testBenchmarkMeasuresBothTransportsWithTheSameCipher() throws {
        let directory = try TLSBenchmark.generateCertificates(script: TestCertificates.scriptPath)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try TLSBenchmark.run(size: 8 * 1024 * 1024, rounds: 3, certDir: directory)
        print("TLSBenchmark (debug build, 8 MiB): ours \(Int(result.mbPerS)) MB/s, reference \(Int(result.referenceMbPerS)) MB/s, ratio \(result.ratio)")
        XCTAssertEqual(result.cipher, "TLS_AES_128_GCM_SHA256")
        XCTAssertEqual(result.roundsMbPerS.count, 3)
        XCTAssertEqual(result.roundsReferenceMbPerS.count, 3)
        XCTAssertGreaterThan(result.mbPerS, 1)
        XCTAssertGreaterThan(result.referenceMbPerS, 1)
        let ratios = zip(result.roundsMbPerS, result.roundsReferenceMbPerS).map { $0 / $1 }.sorted()
        XCTAssertEqual(result.ratio, ratios[1], accuracy: 1e-9, "median of the per-round ratios")
        XCTAssertEqual(result.mbPerS, result.roundsMbPerS.sorted()[1], "median of three")
    }

    func testMedianOfEvenAndOddCounts() {
        XCTAssertEqual(TLSBenchmark.median([3, 1, 2]), 2)
        XCTAssertEqual(TLSBenchmark.median([4, 1, 3, 2]), 2.5)
    }
}
