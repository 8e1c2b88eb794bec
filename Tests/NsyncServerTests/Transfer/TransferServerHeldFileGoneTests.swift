import Foundation
import XCTest
@testable import NsyncServer

/// A holder asked for a version its manifest says it holds, whose file is
/// gone or is another file, refuses the request and tells its node, which
/// looks at the path again (`Node`: `heldFileNotAsKnown`). Found by probing:
/// after folder churn on three nodes and a change of leader, a node held
/// files by its manifest that its disk no longer had; every other node
/// asked for them once a second, for good, each refused with "No such
/// file", and the holder never looked again. A real `TransferServer` on its
/// own loop, real TLS on 127.0.0.1, a `HostilePeer` as the fetcher.
final class TransferServerHeldFileGoneTests: XCTestCase {
    private var certificates: TestCertificates!
    private var root = ""
    private var server: KnownBlocksServer!

    override func setUpWithError() throws {
        certificates = try TestCertificates(nodes: ["node1", "node2"])
        root = NSTemporaryDirectory() + "held-gone-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    override func tearDown() {
        server?.stop()
        certificates?.remove()
        try? FileManager.default.removeItem(atPath: root)
    }

    /// The server believes it holds `disk.img` of `size` bytes.
    private func request(size: UInt64) throws -> HostilePeer.Answer {
        server = try KnownBlocksServer(root: root, size: size, hash: SHA256.hash([UInt8](repeating: 7, count: Int(size))),
                                       certificates: certificates, pending: false, known: nil, wait: 0)
        let peer = try HostilePeer(port: server.port, caPath: certificates.caPath,
                                   certificatePath: certificates.certificatePath("node2"), keyPath: certificates.keyPath("node2"))
        peer.sendHello(Hello(clusterID: peer.clusterID, nodeName: "node2", channel: .file))
        XCTAssertEqual(peer.waitForHello()?.nodeName, "node1")
        peer.sendRequest(FetchRequest(requestID: 1, path: "disk.img", version: 1))
        return peer.waitForAnswer(1, timeout: 20_000)
    }

    func testAHeldFileGoneFromDiskIsRefusedAndLookedAtAgain() throws {
        let answer = try request(size: 4096)
        XCTAssertEqual(answer.header?.status, .readError)
        XCTAssertEqual(server.pathsNotAsKnown, ["disk.img"])
    }

    func testAHeldFileReplacedByOneOfAnotherSizeIsRefusedAndLookedAtAgain() throws {
        try Data(repeating: 7, count: 100).write(to: URL(fileURLWithPath: root + "/disk.img"))
        let answer = try request(size: 4096)
        XCTAssertEqual(answer.header?.status, .versionNotHeld)
        XCTAssertEqual(server.pathsNotAsKnown, ["disk.img"])
    }

    func testTheFileAsAnnouncedIsServedAndNothingIsLookedAt() throws {
        try Data(repeating: 7, count: 4096).write(to: URL(fileURLWithPath: root + "/disk.img"))
        let answer = try request(size: 4096)
        XCTAssertEqual(answer.header?.status, .ok)
        XCTAssertEqual(server.pathsNotAsKnown, [])
    }
}
