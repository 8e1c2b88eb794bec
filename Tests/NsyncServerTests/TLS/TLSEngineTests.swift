import XCTest
@testable import NsyncServer

/// Two engines joined in memory: whatever one puts in `output` is fed to the
/// other, until neither has anything left. Records every event.
final class EnginePair {
    let client: TLSEngine
    let server: TLSEngine
    var clientEvents: [String] = []
    var serverEvents: [String] = []
    var clientReceived: [UInt8] = []
    var serverReceived: [UInt8] = []
    var clientPeer: TLSPeerIdentity?
    var serverPeer: TLSPeerIdentity?
    var clientError: TLSError?
    var serverError: TLSError?
    /// Called when the client's handshake completes (it may write at once).
    var onClientEstablished: ((TLSEngine) -> Void)?
    var onServerEstablished: ((TLSEngine) -> Void)?

    init(client: TLSContext, server: TLSContext) throws {
        self.client = try TLSEngine(context: client)
        self.server = try TLSEngine(context: server)
    }

    /// Moves bytes both ways until quiet; returns the number of rounds.
    @discardableResult
    func pump(maxRounds: Int = 1000) -> Int {
        for round in 0..<maxRounds {
            let moved = move(from: client, to: server, isServer: true) + move(from: server, to: client, isServer: false)
            if moved == 0 { return round }
        }
        XCTFail("engines still talking after \(maxRounds) rounds")
        return maxRounds
    }

    /// The bytes `from` has for the network, without delivering them.
    func takeOutput(of engine: TLSEngine) -> [UInt8] {
        var bytes: [UInt8] = []
        engine.output.take { buffer in
            bytes.append(contentsOf: buffer.bytes)
            engine.output.recycle(buffer)
        }
        return bytes
    }

    func feed(_ bytes: [UInt8], to engine: TLSEngine) {
        let isServer = engine === server
        bytes.withUnsafeBytes { raw in
            engine.receive(raw) { self.record($0, isServer: isServer, engine: engine) }
        }
    }

    private func move(from: TLSEngine, to: TLSEngine, isServer: Bool) -> Int {
        let bytes = takeOutput(of: from)
        if !bytes.isEmpty { feed(bytes, to: to) }
        return bytes.count
    }

    private func record(_ event: TLSEngine.Event, isServer: Bool, engine: TLSEngine) {
        switch event {
        case .established(let peer):
            if isServer { serverPeer = peer; serverEvents.append("established") } else { clientPeer = peer; clientEvents.append("established") }
            if isServer { onServerEstablished?(engine) } else { onClientEstablished?(engine) }
        case .plaintext(let bytes):
            if isServer { serverReceived.append(contentsOf: bytes) } else { clientReceived.append(contentsOf: bytes) }
        case .peerClosed:
            if isServer { serverEvents.append("peerClosed") } else { clientEvents.append("peerClosed") }
        case .failed(let error):
            if isServer { serverError = error; serverEvents.append("failed") } else { clientError = error; clientEvents.append("failed") }
        }
    }
}

/// SplitMix64: a seeded generator so a failing payload can be replayed.
struct TLSTestRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func bytes(_ count: Int) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        var i = 0
        while i < count {
            var word = next()
            for _ in 0..<min(8, count - i) {
                result[i] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                i += 1
            }
        }
        return result
    }
}

extension TestCertificates {
    func serverContext(_ node: String = "node1") throws -> TLSContext {
        try TLSContext(role: .server, caPath: caPath, certificatePath: certificatePath(node), keyPath: keyPath(node))
    }
    func clientContext(_ node: String = "node2") throws -> TLSContext {
        try TLSContext(role: .client, caPath: caPath, certificatePath: certificatePath(node), keyPath: keyPath(node))
    }
    /// A client as an intruder would bring it: trusts our CA, but presents
    /// `certificate` (nil: none), skipping the start-up self-check.
    func intruderContext(certificate: String?, key: String?) throws -> TLSContext {
        try TLSContext(role: .client, caPath: caPath, certificatePath: certificate, keyPath: key,
                       checksOwnCertificate: false)
    }
}

final class TLSEngineTests: XCTestCase {
    var certs: TestCertificates { TestCertificates.shared }

    func testHandshakeInMemoryExposesBothPeerNames() throws {
        let pair = try EnginePair(client: certs.clientContext("node2"), server: certs.serverContext("node1"))
        pair.client.startHandshake()
        pair.pump()
        XCTAssertEqual(pair.clientEvents, ["established"])
        XCTAssertEqual(pair.serverEvents, ["established"])
        XCTAssertEqual(pair.clientPeer?.commonName, "node1")
        XCTAssertEqual(pair.serverPeer?.commonName, "node2")
        XCTAssertEqual(pair.serverPeer?.dnsNames, ["node2", "localhost"])
        XCTAssertTrue(pair.serverPeer?.matches("node2") ?? false)
        XCTAssertFalse(pair.serverPeer?.matches("node1") ?? true)
        XCTAssertFalse(pair.serverPeer?.matches("localhost") ?? true, "every certificate has SAN localhost")
        XCTAssertTrue(TLSPeerIdentity(commonName: "n", dnsNames: ["n", "n.lan"]).matches("n.lan"))
    }

    func testDataFlowsBothWaysAndMatches() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        print("TLSEngineTests seed \(seed)")
        var random = TLSTestRandom(seed: seed)
        let pair = try EnginePair(client: certs.clientContext(), server: certs.serverContext())
        pair.client.startHandshake()
        pair.pump()
        XCTAssertTrue(pair.client.isEstablished && pair.server.isEstablished)

        var sentByClient: [UInt8] = []
        var sentByServer: [UInt8] = []
        for _ in 0..<40 {
            let a = random.bytes(Int.random(in: 0...300_000, using: &random))
            let b = random.bytes(Int.random(in: 0...70_000, using: &random))
            try a.withUnsafeBytes { try pair.client.write($0) }
            try b.withUnsafeBytes { try pair.server.write($0) }
            sentByClient += a
            sentByServer += b
            if Bool.random(using: &random) { pair.pump() }
        }
        pair.pump()
        XCTAssertEqual(pair.serverReceived.count, sentByClient.count)
        XCTAssertTrue(pair.serverReceived == sentByClient, "client->server bytes differ (seed \(seed))")
        XCTAssertTrue(pair.clientReceived == sentByServer, "server->client bytes differ (seed \(seed))")
    }

    func testBytesSplitAtEveryBoundaryStillDecrypt() throws {
        let pair = try EnginePair(client: certs.clientContext(), server: certs.serverContext())
        pair.client.startHandshake()
        pair.pump()
        let message = Array("a record cut into one-byte pieces".utf8)
        try message.withUnsafeBytes { try pair.client.write($0) }
        let wire = pair.takeOutput(of: pair.client)
        for byte in wire { pair.feed([byte], to: pair.server) }
        XCTAssertEqual(pair.serverReceived, message)
    }

    func testAPreferredSizeWriteLeavesAsOneBuffer() throws {
        let pair = try EnginePair(client: certs.clientContext(), server: certs.serverContext())
        pair.client.startHandshake()
        pair.pump()
        let plaintext = [UInt8](repeating: 0x5a, count: TLSConnection.preferredWriteSize)
        try plaintext.withUnsafeBytes { try pair.client.write($0) }
        var buffers: [IOBuffer] = []
        pair.client.output.take { buffers.append($0) }
        XCTAssertEqual(buffers.count, 1, "one socket write per 256 KiB")
        XCTAssertEqual(buffers.first?.count, 16 * (16_384 + 22), "16 full TLS 1.3 records")
        let wire = buffers.flatMap(\.bytes)
        pair.feed(wire, to: pair.server)
        XCTAssertTrue(pair.serverReceived == plaintext)
    }

    func testCloseNotifyEndsBothSidesCleanly() throws {
        let pair = try EnginePair(client: certs.clientContext(), server: certs.serverContext())
        pair.client.startHandshake()
        pair.pump()
        try Array("last words".utf8).withUnsafeBytes { try pair.client.write($0) }
        pair.client.close()
        pair.pump()
        XCTAssertEqual(pair.serverReceived, Array("last words".utf8))
        XCTAssertEqual(pair.serverEvents, ["established", "peerClosed"])
        XCTAssertEqual(pair.clientEvents, ["established", "peerClosed"])
        XCTAssertNil(pair.client.receiveEOF())
        XCTAssertNil(pair.server.receiveEOF())
    }

    func testEOFWithoutCloseNotifyIsReportedAsTruncation() throws {
        let pair = try EnginePair(client: certs.clientContext(), server: certs.serverContext())
        pair.client.startHandshake()
        pair.pump()
        XCTAssertEqual(pair.server.receiveEOF()?.kind, .truncated)
    }

    func testWriteBeforeHandshakeIsRefused() throws {
        let engine = try TLSEngine(context: certs.clientContext())
        XCTAssertThrowsError(try [1, 2, 3].withUnsafeBytes { try engine.write($0) }) { error in
            XCTAssertEqual((error as? TLSError)?.kind, .misuse)
        }
    }

    // MARK: - Refused peers: no application data either way, and an alert.

    /// Runs a handshake where the server must refuse the client; each side
    /// tries to send application data the moment it thinks it may.
    private func assertRefused(client: TLSContext, server: TLSContext,
                               file: StaticString = #filePath, line: UInt = #line) throws -> EnginePair {
        let pair = try EnginePair(client: client, server: server)
        pair.onClientEstablished = { engine in try? Array("client secret".utf8).withUnsafeBytes { try engine.write($0) } }
        pair.onServerEstablished = { engine in try? Array("server secret".utf8).withUnsafeBytes { try engine.write($0) } }
        pair.client.startHandshake()
        pair.pump()
        XCTAssertTrue(pair.serverReceived.isEmpty, "server delivered data from a refused client", file: file, line: line)
        XCTAssertTrue(pair.clientReceived.isEmpty, "refused client got application data", file: file, line: line)
        XCTAssertNil(pair.serverPeer, "server accepted the refused client", file: file, line: line)
        XCTAssertEqual(pair.serverError?.kind, .handshake, file: file, line: line)
        XCTAssertNotNil(pair.clientError, "client was not told it was refused", file: file, line: line)
        return pair
    }

    func testClientWithoutCertificateIsRefusedWithAlert() throws {
        let pair = try assertRefused(client: certs.intruderContext(certificate: nil, key: nil), server: certs.serverContext())
        XCTAssertTrue(pair.clientError!.description.contains("alert certificate required"), "\(pair.clientError!)")
    }

    func testClientWithForeignCACertificateIsRefusedWithAlert() throws {
        let pair = try assertRefused(client: certs.intruderContext(certificate: certs.foreignCertificatePath, key: certs.foreignKeyPath),
                                     server: certs.serverContext())
        XCTAssertTrue(pair.clientError!.description.contains("alert"), "\(pair.clientError!)")
        XCTAssertTrue(pair.serverError!.description.contains("unable to get local issuer certificate"), "\(pair.serverError!)")
    }

    func testClientWithExpiredCertificateIsRefusedWithAlert() throws {
        let pair = try assertRefused(client: certs.intruderContext(certificate: certs.expiredCertificatePath, key: certs.expiredKeyPath),
                                     server: certs.serverContext())
        XCTAssertTrue(pair.clientError!.description.contains("alert certificate expired"), "\(pair.clientError!)")
        XCTAssertTrue(pair.serverError!.description.contains("certificate has expired"), "\(pair.serverError!)")
    }

    func testClientRefusesServerFromAnotherCluster() throws {
        let foreignServer = try TLSContext(role: .server, caPath: certs.foreignCAPath,
                                           certificatePath: certs.foreignCertificatePath, keyPath: certs.foreignKeyPath)
        let pair = try EnginePair(client: certs.clientContext(), server: foreignServer)
        pair.client.startHandshake()
        pair.pump()
        XCTAssertNil(pair.clientPeer)
        XCTAssertEqual(pair.clientError?.kind, .handshake)
        XCTAssertNil(pair.serverPeer)
    }

    func testPlaintextOnTLSPortFailsWithoutDeliveringAnything() throws {
        // OpenSSL answers a TLS-framed bad record with an alert; bytes that
        // are not TLS at all (HTTP, a text line) get no alert, only a close.
        let cases: [(text: String, alert: Bool)] = [
            ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", false),
            ("hello nsyncd, let me in\n", false),
            ("\u{16}\u{3}\u{1}\u{0}\u{5}hello", true),
        ]
        for (text, alert) in cases {
            let server = try TLSEngine(context: certs.serverContext())
            var failure: TLSError?
            Array(text.utf8).withUnsafeBytes { raw in
                server.receive(raw) { event in
                    if case .failed(let error) = event { failure = error }
                    if case .plaintext = event { XCTFail("plaintext delivered") }
                    if case .established = event { XCTFail("handshake completed on plaintext") }
                }
            }
            var output: [UInt8] = []
            server.output.take { output += $0.bytes; server.output.recycle($0) }
            XCTAssertEqual(failure?.kind, .handshake, text.debugDescription)
            XCTAssertEqual(output.first == 0x15, alert, "\(text.debugDescription): output \(output.prefix(7))")
        }
    }
}
