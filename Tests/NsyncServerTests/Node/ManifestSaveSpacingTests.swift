import XCTest
@testable import NsyncServer

/// The manifest is encoded whole on the loop; a large one is saved less often.
final class ManifestSaveSpacingTests: XCTestCase {
    func testASmallManifestIsSavedEverySecond() {
        XCTAssertTrue(Node.manifestSaveDue(now: 1_000, lastEncoded: (0, 0)), "the first save")
        XCTAssertFalse(Node.manifestSaveDue(now: 10_999, lastEncoded: (10_000, 3)))
        XCTAssertTrue(Node.manifestSaveDue(now: 11_000, lastEncoded: (10_000, 3)))
        XCTAssertTrue(Node.manifestSaveDue(now: 11_000, lastEncoded: (10_000, 20)), "20 ms x 50 = 1 s")
    }

    func testALargeOneWaitsFiftyTimesItsEncodingTime() {
        // 100 ms of encoding (300,000 paths): 5 s between saves, 2% of the loop.
        XCTAssertFalse(Node.manifestSaveDue(now: 14_999, lastEncoded: (10_000, 100)))
        XCTAssertTrue(Node.manifestSaveDue(now: 15_000, lastEncoded: (10_000, 100)))
    }

    func testAClockBehindTheLastSaveWaitsRatherThanWrapping() {
        XCTAssertFalse(Node.manifestSaveDue(now: 5_000, lastEncoded: (10_000, 0)))
    }
}
