import XCTest
@testable import NsyncServer

final class TCPStreamTests: XCTestCase {
    /// A listener on 127.0.0.1 echoing every byte back, and the port it chose.
    private func startEchoServer(on loop: EventLoop) throws -> (TCPListener, Int) {
        let listener = TCPListener(loop: loop)
        try listener.bind(host: "127.0.0.1", port: 0)
        try listener.listen { stream in
            try? stream.startReading(onRead: { bytes in
                stream.write(Array(bytes))
            }, onEnd: { _ in
                stream.shutdown { _ in stream.close() }
            })
        }
        return (listener, try XCTUnwrap(listener.localPort))
    }

    func testEchoOfSeveralMebibytesComesBackIntact() throws {
        let loop = try EventLoop()
        let (listener, port) = try startEchoServer(on: loop)
        var random = LoopTestSupport.SeededRandom(seed: LoopTestSupport.seed())
        let total = 6 << 20
        let payload = (0..<total).map { _ in UInt8.random(in: 0 ... 255, using: &random) }

        let client = TCPStream(loop: loop)
        var connected: UVError?? = .none
        client.connect(host: "127.0.0.1", port: port) { connected = .some($0) }
        loop.waitFor("connect") { connected != nil }
        XCTAssertNil(connected!)
        XCTAssertEqual(client.peerAddress, "127.0.0.1:\(port)")
        try client.setNoDelay(true)

        var received: [UInt8] = []
        received.reserveCapacity(total)
        var ended = false
        try client.startReading(onRead: { received.append(contentsOf: $0) }, onEnd: { error in
            XCTAssertNil(error)
            ended = true
        })
        // Chunks of varied sizes, some gathered into one writev, paced by the
        // write queue as a real sender would be.
        var offset = 0
        var writesDone = 0
        var writesIssued = 0
        let started = loop.now
        func pump() {
            while offset < total && client.writeQueueSize < 1 << 20 {
                let size = min(total - offset, Int.random(in: 1 ... 200_000, using: &random))
                let chunk = payload[offset ..< offset + size]
                writesIssued += 1
                let done: (UVError?) -> Void = { error in
                    XCTAssertNil(error)
                    writesDone += 1
                    pump()
                }
                if size > 10 && size % 2 == 0 {
                    let half = chunk.startIndex + size / 2
                    client.write(gathering: [chunk[..<half], chunk[half...]], completion: done)
                } else {
                    client.write(chunk, completion: done)
                }
                offset += size
            }
            if offset == total && writesDone == writesIssued { client.shutdown() }
        }
        pump()
        loop.waitFor("the echo", timeout: 15_000) { ended }
        let elapsed = max(1, loop.now - started)
        print("echo: \(total >> 20) MiB each way in \(elapsed) ms (\(total / 1000 / Int(elapsed)) MB/s, debug build)")
        XCTAssertEqual(received.count, total)
        XCTAssertTrue(received == payload, "echoed bytes differ")
        client.close()
        listener.close()
        loop.waitFor("all handles released") { loop.liveHandleCount == 0 }
        loop.close()
    }

    func testWriteKeepsItsBytesAliveAndReadsSeeByteBufferAndIOBufferWrites() throws {
        let loop = try EventLoop()
        let listener = TCPListener(loop: loop)
        try listener.bind(host: "localhost", port: 0)
        var serverReceived: [UInt8] = []
        var serverEnded = false
        try listener.listen { stream in
            try? stream.startReading(onRead: { serverReceived += $0 }, onEnd: { _ in
                serverEnded = true
                stream.close()
            })
        }
        let client = TCPStream(loop: loop)
        var completions: [String] = []
        client.connect(host: "localhost", port: try XCTUnwrap(listener.localPort)) { error in
            XCTAssertNil(error)
            // The caller's copies go away at once: the stream must keep them.
            var buffer = ByteBuffer()
            buffer.writeInteger(UInt32(0xDEAD_BEEF))
            buffer.writeBytes([9, 9])
            _ = try? buffer.readInteger(as: UInt16.self)   // only the readable bytes are sent
            client.write([1, 2, 3]) { XCTAssertNil($0); completions.append("array") }
            client.write(buffer) { XCTAssertNil($0); completions.append("bytebuffer") }
            client.write(IOBuffer([7, 8])) { XCTAssertNil($0); completions.append("iobuffer") }
            client.shutdown { XCTAssertNil($0); completions.append("shutdown") }
            XCTAssertTrue(completions.isEmpty, "completions never run inside the call")
        }
        loop.waitFor("the server to see EOF") { serverEnded }
        XCTAssertEqual(serverReceived, [1, 2, 3, 0xBE, 0xEF, 9, 9, 7, 8])
        XCTAssertEqual(completions, ["array", "bytebuffer", "iobuffer", "shutdown"])
        client.close()
        listener.close()
        loop.close()
        XCTAssertEqual(loop.liveHandleCount, 0)
    }

    func testConnectToAClosedPortIsRefused() throws {
        let loop = try EventLoop()
        let probe = TCPListener(loop: loop)
        try probe.bind(host: "127.0.0.1", port: 0)
        let port = try XCTUnwrap(probe.localPort)
        probe.close()
        let client = TCPStream(loop: loop)
        var outcome: UVError?? = .none
        client.connect(host: "127.0.0.1", port: port) { outcome = .some($0) }
        loop.waitFor("connect to fail") { outcome != nil }
        let error = try XCTUnwrap(outcome!)
        XCTAssertTrue(error.isConnectionRefused, "\(error)")
        XCTAssertEqual(error.description, "connect 127.0.0.1:\(port): connection refused (ECONNREFUSED)")
        client.close()
        loop.close()
    }

    func testConnectResolvesNamesThroughGetaddrinfoAndRejectsBadPorts() throws {
        let loop = try EventLoop()
        let (listener, port) = try startEchoServer(on: loop)
        // "127.1" is not strict dotted-quad, so it takes the getaddrinfo path
        // (which accepts it without any DNS traffic).
        let client = TCPStream(loop: loop)
        var outcome: UVError?? = .none
        client.connect(host: "127.1", port: port) { outcome = .some($0) }
        loop.waitFor("resolved connect") { outcome != nil }
        XCTAssertNil(outcome!)
        XCTAssertEqual(client.peerAddress, "127.0.0.1:\(port)")

        let bad = TCPStream(loop: loop)
        var badOutcome: UVError?? = .none
        bad.connect(host: "127.0.0.1", port: 70_000) { badOutcome = .some($0) }
        loop.waitFor("bad port") { badOutcome != nil }
        XCTAssertEqual(badOutcome??.operation, "connect")
        XCTAssertEqual(badOutcome??.target, "127.0.0.1:70000")
        [client, bad].forEach { $0.close() }
        listener.close()
        loop.close()
    }

    func testBindingAPortInUseThrowsAddressInUse() throws {
        let loop = try EventLoop()
        let first = TCPListener(loop: loop)
        try first.bind(host: "127.0.0.1", port: 0)
        try first.listen { $0.close() }
        let port = try XCTUnwrap(first.localPort)
        let second = TCPListener(loop: loop)
        XCTAssertThrowsError(try second.bind(host: "127.0.0.1", port: port)) { error in
            let uv = error as? UVError
            XCTAssertEqual(uv?.isAddressInUse, true, "\(error)")
            XCTAssertEqual(uv?.description, "bind 127.0.0.1:\(port): address already in use (EADDRINUSE)")
        }
        first.close()
        second.close()
        loop.close()
    }

    func testClosingWithQueuedWritesCancelsThemAndReleasesTheStream() throws {
        let loop = try EventLoop()
        let listener = TCPListener(loop: loop)
        try listener.bind(host: "127.0.0.1", port: 0)
        var accepted: [TCPStream] = []
        try listener.listen { accepted.append($0) }   // never reads: the client's writes back up
        var weakClient: WeakBox<TCPStream>?
        var results: [UVError?] = []
        do {
            let client = TCPStream(loop: loop)
            weakClient = WeakBox(client)
            client.connect(host: "127.0.0.1", port: try XCTUnwrap(listener.localPort)) { _ in
                // Far more than the socket buffers hold.
                for _ in 0..<16 { client.write([UInt8](repeating: 1, count: 1 << 20)) { results.append($0) } }
                client.close()
                client.write([1]) { results.append($0) }   // after close: canceled, not lost
            }
        }
        loop.waitFor("all write completions") { results.count == 17 }
        XCTAssertTrue(results.contains { $0?.isCanceled == true }, "\(results)")
        XCTAssertEqual(results.last??.isCanceled, true)
        loop.waitFor("client released") { weakClient?.value == nil }
        accepted.forEach { $0.close() }
        listener.close()
        loop.close()
        XCTAssertEqual(loop.liveHandleCount, 0)
    }

    func testThousandConnectCloseCyclesLeakNoDescriptorsHandlesOrObjects() throws {
        let loop = try EventLoop()
        let listener = TCPListener(loop: loop)
        try listener.bind(host: "127.0.0.1", port: 0)
        let port = try XCTUnwrap(listener.localPort)
        var weak: [WeakBox<TCPStream>] = []
        var serverSide = 0
        try listener.listen { stream in
            serverSide += 1
            weak.append(WeakBox(stream))
            // The callbacks capture the stream: closing must break the cycle.
            try? stream.startReading(onRead: { _ in stream.write([0]) }, onEnd: { _ in stream.close() })
        }
        let descriptorsBefore = LoopTestSupport.openDescriptorCount()
        let handlesBefore = loop.liveHandleCount
        let cycles = 1_000
        var completed = 0
        var failures: [UVError] = []
        func cycle() {
            guard completed < cycles else { return }
            let client = TCPStream(loop: loop)
            weak.append(WeakBox(client))
            client.connect(host: "127.0.0.1", port: port) { error in
                if let error { failures.append(error) }
                // Closed while still reading: only the close may break this cycle.
                try? client.startReading(onRead: { _ in client.stopReading() }, onEnd: { _ in client.close() })
                client.write([1]) { _ in }
                client.close {
                    completed += 1
                    cycle()
                }
            }
        }
        cycle()
        loop.waitFor("\(cycles) cycles", timeout: 15_000) { completed == cycles }
        loop.waitFor("server sides closed", timeout: 5_000) {
            serverSide == cycles && loop.liveHandleCount == handlesBefore
        }
        XCTAssertEqual(failures, [])
        XCTAssertEqual(LoopTestSupport.openDescriptorCount(), descriptorsBefore, "descriptors leaked")
        XCTAssertEqual(loop.liveHandleCount, handlesBefore)
        XCTAssertEqual(weak.count, 2 * cycles)
        XCTAssertEqual(weak.filter { $0.value != nil }.count, 0, "streams not deallocated")
        listener.close()
        loop.close()
        XCTAssertEqual(loop.liveHandleCount, 0)
    }
}
