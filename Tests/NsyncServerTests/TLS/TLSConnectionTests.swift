import XCTest
@testable import NsyncServer

/// A deterministic byte stream with a prime period, so a receiver can check
/// any slice at any offset with one memcmp, and a reordered or dropped
/// record shows up (16 KiB records never line up with the period).
final class PatternStream {
    static let period = 1_000_003
    let pattern: [UInt8]
    let seed: UInt64

    init(seed: UInt64) {
        self.seed = seed
        var random = TLSTestRandom(seed: seed)
        pattern = random.bytes(Self.period)
    }

    /// Calls `body` with consecutive pieces of the stream from `offset`, `count` bytes in all.
    func withBytes(at offset: Int, count: Int, _ body: (UnsafeRawBufferPointer) -> Void) {
        var position = offset
        var remaining = count
        pattern.withUnsafeBytes { all in
            while remaining > 0 {
                let start = position % Self.period
                let n = min(remaining, Self.period - start)
                body(UnsafeRawBufferPointer(rebasing: all[start..<start + n]))
                position += n
                remaining -= n
            }
        }
    }

    /// True when `bytes` are the stream's bytes at `offset`.
    func matches(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Bool {
        var ok = true
        var consumed = 0
        withBytes(at: offset, count: bytes.count) { expected in
            if ok, memcmp(expected.baseAddress!, bytes.baseAddress! + consumed, expected.count) != 0 { ok = false }
            consumed += expected.count
        }
        return ok
    }
}

/// One side of a test connection: sends `total` bytes of a pattern stream
/// with backpressure, checks what it receives against the peer's pattern.
final class PatternEndpoint {
    let connection: TLSConnection
    let sending: PatternStream
    let expecting: PatternStream
    let total: Int
    let chunk = 256 * 1024
    var sent = 0
    var received = 0
    var corruptAt: Int?
    var established = false
    var closed = false
    var closeError: Error?
    var maxBuffered = 0
    var writeRefusals = 0

    init(_ connection: TLSConnection, sending: PatternStream, expecting: PatternStream, total: Int) {
        self.connection = connection
        self.sending = sending
        self.expecting = expecting
        self.total = total
        connection.onEstablished = { [unowned self] _ in established = true; pump() }
        connection.onWritable = { [unowned self] in pump() }
        connection.onData = { [unowned self] bytes in
            if corruptAt == nil, !expecting.matches(bytes, at: received) { corruptAt = received }
            received += bytes.count
        }
        connection.onClose = { [unowned self] error in closed = true; closeError = error }
    }

    func pump() {
        while sent < total {
            let n = min(chunk, total - sent)
            var accepted = true
            sending.withBytes(at: sent, count: n) { piece in accepted = connection.write(piece) && accepted }
            sent += n
            maxBuffered = max(maxBuffered, connection.bufferedByteCount)
            if !accepted { writeRefusals += 1; return }
        }
    }
}

/// A TLS server on 127.0.0.1 and an ephemeral port, on the test's loop.
final class TLSTestServer {
    let loop: EventLoop
    let listener: TCPListener
    let context: TLSContext
    var connections: [TLSConnection] = []
    var closeErrors: [Error?] = []
    var established = 0
    var received: [UInt8] = []
    /// Configures each accepted connection before `start()`.
    var configure: ((TLSConnection) -> Void)?
    var handshakeTimeout = TLSConnection.defaultHandshakeTimeout

    var port: Int { listener.localPort! }

    init(loop: EventLoop, context: TLSContext) throws {
        self.loop = loop
        self.context = context
        listener = TCPListener(loop: loop)
        try listener.bind(host: "127.0.0.1", port: 0)
        try listener.listen { [unowned self] stream in
            do {
                let connection = try TLSConnection(stream: stream, context: context, loop: loop,
                                                   handshakeTimeout: handshakeTimeout)
                connections.append(connection)
                connection.onEstablished = { [unowned self, unowned connection] _ in
                    established += 1
                    connection.write(Array("greetings from the server".utf8))
                }
                connection.onData = { [unowned self] in received.append(contentsOf: $0) }
                connection.onClose = { [unowned self] in closeErrors.append($0) }
                configure?(connection)
                connection.start()
            } catch {
                XCTFail("server connection: \(error)")
                stream.close()
            }
        }
    }
}

/// A client's view of one connection attempt.
final class TLSTestClient {
    var connection: TLSConnection?
    var peer: TLSPeerIdentity?
    var received: [UInt8] = []
    var closed = false
    var closeError: Error?
    var connectError: Error?

    init(loop: EventLoop, port: Int, context: TLSContext, onEstablished: ((TLSConnection) -> Void)? = nil) {
        let stream = TCPStream(loop: loop)
        stream.connect(host: "127.0.0.1", port: port) { [self] error in
            if let error { connectError = error; closed = true; stream.close(); return }
            do {
                let connection = try TLSConnection(stream: stream, context: context, loop: loop)
                self.connection = connection
                connection.onEstablished = { [unowned self, unowned connection] identity in
                    peer = identity
                    onEstablished?(connection)
                }
                connection.onData = { [unowned self] in received.append(contentsOf: $0) }
                connection.onClose = { [unowned self] in closed = true; closeError = $0 }
                connection.start()
            } catch {
                connectError = error
                closed = true
                stream.close()
            }
        }
    }
}

final class TLSConnectionTests: XCTestCase {
    var certs: TestCertificates { TestCertificates.shared }
    var loop: EventLoop!

    override func setUpWithError() throws {
        loop = try EventLoop()
    }

    override func tearDown() {
        loop.close()
        XCTAssertEqual(loop.liveHandleCount, 0, "handles leaked")
        loop = nil
    }

    /// Runs the loop until `condition` or 10 s; fails the test on timeout.
    @discardableResult
    func wait(_ what: String, timeout: UInt64 = 10_000, file: StaticString = #filePath, line: UInt = #line,
              until condition: () -> Bool) -> Bool {
        let ok = loop.run(until: condition, timeout: timeout)
        if !ok { XCTFail("timed out waiting for \(what)", file: file, line: line) }
        return ok
    }

    /// A good client completes mutual TLS and gets the server's greeting.
    func assertGoodClientIsServed(_ server: TLSTestServer, file: StaticString = #filePath, line: UInt = #line) throws {
        let before = server.established
        let client = TLSTestClient(loop: loop, port: server.port, context: try certs.clientContext("node2")) { connection in
            connection.write(Array("hello".utf8))
        }
        wait("a good client to be served", file: file, line: line) {
            client.received.count >= 25 && server.established == before + 1 && server.received.suffix(5) == Array("hello".utf8)
        }
        XCTAssertEqual(client.peer?.commonName, "node1", file: file, line: line)
        XCTAssertEqual(String(decoding: client.received, as: UTF8.self), "greetings from the server", file: file, line: line)
        client.connection?.close()
        wait("the good client to close", file: file, line: line) { client.closed }
        XCTAssertNil(client.closeError, file: file, line: line)
    }

    func testLargeTransferBothWaysOverMutualTLSArrivesIntact() throws {
        // 64 MiB each way takes ~2 s in a debug build here; NSYNC_TLS_TEST_MIB overrides.
        let mib = Int(ProcessInfo.processInfo.environment["NSYNC_TLS_TEST_MIB"] ?? "") ?? 64
        let total = mib * 1024 * 1024
        let seed = UInt64.random(in: 0...UInt64.max)
        print("TLSConnectionTests seed \(seed), \(mib) MiB each way")
        let toServer = PatternStream(seed: seed)
        let toClient = PatternStream(seed: seed &+ 1)

        let server = try TLSTestServer(loop: loop, context: certs.serverContext())
        var serverEnd: PatternEndpoint?
        server.configure = { serverEnd = PatternEndpoint($0, sending: toClient, expecting: toServer, total: total) }
        let stream = TCPStream(loop: loop)
        var clientEnd: PatternEndpoint?
        stream.connect(host: "127.0.0.1", port: server.port) { [self] error in
            XCTAssertNil(error)
            let connection = try! TLSConnection(stream: stream, context: try! certs.clientContext(), loop: loop)
            clientEnd = PatternEndpoint(connection, sending: toServer, expecting: toClient, total: total)
            connection.start()
        }
        let started = Date()
        wait("\(mib) MiB both ways", timeout: 120_000) {
            (clientEnd?.received ?? 0) >= total && (serverEnd?.received ?? 0) >= total
        }
        print("TLSConnectionTests: \(mib) MiB each way in \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
        let client = try XCTUnwrap(clientEnd)
        let serverSide = try XCTUnwrap(serverEnd)
        XCTAssertEqual(client.received, total)
        XCTAssertEqual(serverSide.received, total)
        XCTAssertNil(client.corruptAt, "client received wrong bytes at \(client.corruptAt ?? 0) (seed \(seed))")
        XCTAssertNil(serverSide.corruptAt, "server received wrong bytes at \(serverSide.corruptAt ?? 0) (seed \(seed))")
        for end in [client, serverSide] {
            XCTAssertLessThanOrEqual(end.maxBuffered, end.connection.writeLimit + 2 * end.chunk, "buffer not bounded")
        }
        client.connection.close()
        wait("both ends to close cleanly") { client.closed && serverSide.closed }
        XCTAssertNil(client.closeError)
        XCTAssertNil(serverSide.closeError)
    }

    func testStalledReaderKeepsWriterBufferBoundedThenEverythingArrives() throws {
        let total = 48 * 1024 * 1024
        let toClient = PatternStream(seed: 7)
        let server = try TLSTestServer(loop: loop, context: certs.serverContext())
        var writer: PatternEndpoint?
        server.configure = { connection in
            writer = PatternEndpoint(connection, sending: toClient, expecting: toClient, total: total)
        }
        let stream = TCPStream(loop: loop)
        var reader: PatternEndpoint?
        stream.connect(host: "127.0.0.1", port: server.port) { [self] error in
            XCTAssertNil(error)
            let connection = try! TLSConnection(stream: stream, context: try! certs.clientContext(), loop: loop)
            reader = PatternEndpoint(connection, sending: toClient, expecting: toClient, total: 0)
            connection.onEstablished = { _ in connection.pauseReading() }
            connection.start()
        }
        wait("the writer to be told to stop") { (writer?.writeRefusals ?? 0) > 0 }
        let end = try XCTUnwrap(writer)
        // While the reader stalls, the writer must not produce more: give it
        // some loop iterations to prove it stays put.
        let sentWhenStopped = end.sent
        loop.run(until: { false }, timeout: 300)
        XCTAssertEqual(end.sent, sentWhenStopped, "the writer kept writing into a stalled connection")
        XCTAssertLessThan(end.sent, total, "the stall never pushed back")
        XCTAssertLessThanOrEqual(end.maxBuffered, end.connection.writeLimit + 2 * end.chunk)
        XCTAssertLessThanOrEqual(end.connection.bufferedByteCount, end.connection.writeLimit + 2 * end.chunk)

        try XCTUnwrap(reader).connection.resumeReading()
        wait("everything to arrive after the reader resumed", timeout: 60_000) { (reader?.received ?? 0) >= total }
        XCTAssertEqual(reader?.received, total)
        XCTAssertNil(reader?.corruptAt)
        XCTAssertGreaterThan(end.writeRefusals, 0)
        reader?.connection.close()
        wait("close") { reader!.closed && end.closed }
    }

    func testCleanCloseDeliversEverythingAndReportsNoError() throws {
        let server = try TLSTestServer(loop: loop, context: certs.serverContext())
        let payload = TLSTestRandom(seed: 11).bytesOf(300_000)
        let client = TLSTestClient(loop: loop, port: server.port, context: try certs.clientContext()) { connection in
            connection.write(payload)
            connection.close()
        }
        wait("both ends closed") { client.closed && server.closeErrors.count == 1 }
        XCTAssertNil(client.closeError)
        XCTAssertNil(server.closeErrors.first!)
        XCTAssertTrue(server.received == payload)
    }

    func testTCPCloseWithoutCloseNotifyIsReportedAsTruncated() throws {
        let server = try TLSTestServer(loop: loop, context: certs.serverContext())
        let client = TLSTestClient(loop: loop, port: server.port, context: try certs.clientContext())
        // Once the server's greeting shows it is established too, the TCP
        // socket goes without TLS ever saying goodbye.
        wait("the server's greeting") { client.received.count == 25 }
        client.connection?.stream.close()
        wait("server to notice") { server.closeErrors.count == 1 }
        XCTAssertEqual((server.closeErrors.first! as? TLSError)?.kind, .truncated)
        wait("client handle released") { client.connection?.stream.isClosed ?? false }
    }

    func testSilentClientIsClosedAtTheHandshakeTimeout() throws {
        let server = try TLSTestServer(loop: loop, context: certs.serverContext())
        server.handshakeTimeout = 200
        let raw = TCPStream(loop: loop)
        var ended = false
        var bytes = 0
        raw.connect(host: "127.0.0.1", port: server.port) { error in
            XCTAssertNil(error)
            try? raw.startReading(onRead: { bytes += $0.count }, onEnd: { _ in ended = true; raw.close() })
        }
        let started = Date()
        wait("the server to give up") { ended && server.closeErrors.count == 1 }
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.19)
        XCTAssertEqual((server.closeErrors.first! as? TLSError)?.kind, .handshakeTimeout)
        XCTAssertEqual(bytes, 0)
        try assertGoodClientIsServed(server)
    }

    // MARK: - Refused clients: no application data, an alert, and the server carries on.

    private func assertRefused(_ context: TLSContext, alert: String,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let server = try TLSTestServer(loop: loop, context: certs.serverContext())
        let client = TLSTestClient(loop: loop, port: server.port, context: context) { connection in
            // A TLS 1.3 client finishes before the server checked its
            // certificate; what it sends now must never be delivered.
            connection.write(Array("let me in".utf8))
        }
        wait("the refused client to be closed", file: file, line: line) { client.closed && server.closeErrors.count == 1 }
        XCTAssertEqual(client.received, [], "a refused client got application data", file: file, line: line)
        XCTAssertEqual(server.received, [], "the server delivered a refused client's data", file: file, line: line)
        XCTAssertEqual(server.established, 0, file: file, line: line)
        XCTAssertEqual((server.closeErrors.first! as? TLSError)?.kind, .handshake, file: file, line: line)
        let clientError = "\(client.closeError.map { "\($0)" } ?? "no error")"
        XCTAssertTrue(clientError.contains(alert), "client error \"\(clientError)\" lacks \"\(alert)\"", file: file, line: line)
        try assertGoodClientIsServed(server, file: file, line: line)
    }

    func testClientWithoutCertificateIsRefusedAndServerCarriesOn() throws {
        try assertRefused(certs.intruderContext(certificate: nil, key: nil), alert: "alert certificate required")
    }

    func testClientWithForeignCACertificateIsRefusedAndServerCarriesOn() throws {
        try assertRefused(certs.intruderContext(certificate: certs.foreignCertificatePath, key: certs.foreignKeyPath),
                          alert: "alert unknown ca")
    }

    func testClientWithExpiredCertificateIsRefusedAndServerCarriesOn() throws {
        try assertRefused(certs.intruderContext(certificate: certs.expiredCertificatePath, key: certs.expiredKeyPath),
                          alert: "alert certificate expired")
    }

    func testPlaintextOnTheTLSPortIsRefusedAndServerCarriesOn() throws {
        let server = try TLSTestServer(loop: loop, context: certs.serverContext())
        let raw = TCPStream(loop: loop)
        var ended = false
        var bytes = 0
        raw.connect(host: "127.0.0.1", port: server.port) { error in
            XCTAssertNil(error)
            raw.write(Array("HELLO nsyncd\r\nlet me in\r\n".utf8))
            try? raw.startReading(onRead: { bytes += $0.count }, onEnd: { _ in ended = true; raw.close() })
        }
        wait("the server to drop the plaintext client") { ended && server.closeErrors.count == 1 }
        XCTAssertEqual(bytes, 0)
        XCTAssertEqual(server.received, [])
        XCTAssertEqual((server.closeErrors.first! as? TLSError)?.kind, .handshake)
        try assertGoodClientIsServed(server)
    }
}

extension TLSTestRandom {
    func bytesOf(_ count: Int) -> [UInt8] {
        var copy = self
        return copy.bytes(count)
    }
}
