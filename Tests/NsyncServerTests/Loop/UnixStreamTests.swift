import XCTest
@testable import NsyncServer

final class UnixStreamTests: XCTestCase {
    func testEchoOverAUnixSocketAndSocketFileRemovedOnClose() throws {
        let directory = try LoopTestSupport.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/control.sock"
        let loop = try EventLoop()
        let listener = UnixListener(loop: loop)
        try listener.bind(path: path)
        try listener.listen { stream in
            XCTAssertEqual(stream.path, path)
            try? stream.startReading(onRead: { stream.write(Array($0)) }, onEnd: { _ in stream.close() })
        }
        let client = UnixStream(loop: loop)
        let request = Array("status\n".utf8) + [UInt8](repeating: 0x5A, count: 300_000)
        var reply: [UInt8] = []
        client.connect(path: path) { error in
            XCTAssertNil(error)
            client.write(request)
            try? client.startReading(onRead: { reply += $0 }, onEnd: { _ in })
        }
        loop.waitFor("the echo") { reply.count == request.count }
        XCTAssertTrue(reply == request)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
        client.close()
        listener.close()
        loop.waitFor("handles released") { loop.liveHandleCount == 0 }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "libuv removes the socket file")
        loop.close()
    }

    func testBindingAnExistingPathIsAddressInUseAndConnectingToNothingFails() throws {
        let directory = try LoopTestSupport.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/control.sock"
        let loop = try EventLoop()
        let first = UnixListener(loop: loop)
        try first.bind(path: path)
        try first.listen { $0.close() }
        let second = UnixListener(loop: loop)
        XCTAssertThrowsError(try second.bind(path: path)) { XCTAssertEqual(($0 as? UVError)?.isAddressInUse, true, "\($0)") }

        let client = UnixStream(loop: loop)
        var outcome: UVError?? = .none
        client.connect(path: directory + "/absent.sock") { outcome = .some($0) }
        loop.waitFor("connect to fail") { outcome != nil }
        XCTAssertEqual(outcome??.isNotFound, true, "\(String(describing: outcome))")

        let long = UnixStream(loop: loop)
        var longOutcome: UVError?? = .none
        long.connect(path: "/" + String(repeating: "x", count: 200)) { longOutcome = .some($0) }
        loop.waitFor("too long") { longOutcome != nil }
        XCTAssertEqual(longOutcome??.name, "ENAMETOOLONG")
        [first, second].forEach { $0.close() }
        [client, long].forEach { $0.close() }
        loop.close()
        XCTAssertEqual(loop.liveHandleCount, 0)
    }
}
