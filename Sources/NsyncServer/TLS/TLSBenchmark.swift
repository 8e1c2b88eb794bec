import Foundation

/// `nsyncd bench tls`: TLS throughput of our transport (TLSConnection on two
/// EventLoops, each on its own thread, over loopback) against a reference —
/// plain OpenSSL `SSL_write`/`SSL_read` on two blocking sockets in two
/// threads — with the same contexts (so the same cipher, AES-128-GCM), the
/// same chunk size and the same bytes. Rounds alternate ours/reference and
/// medians are reported; on a shared machine only the ratio means much.
/// Runs on the calling thread plus two threads per round.
public enum TLSBenchmark {
    /// Medians over the rounds; MB is 10^6 bytes.
    public struct Result: Codable, Sendable {
        public var mbPerS: Double
        public var referenceMbPerS: Double
        /// The median over rounds of ours / reference in that round: the
        /// figure that counts (target >= 0.9).
        public var ratio: Double
        public var size: Int
        public var chunk: Int
        public var cipher: String
        public var roundsMbPerS: [Double]
        public var roundsReferenceMbPerS: [Double]
    }

    /// What can stop a benchmark round.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Node names whose certificates `run` expects in `certDir`.
    public static let serverNode = "bench1"
    public static let clientNode = "bench2"
    /// Bytes per `write` / `SSL_write`, both sides.
    public static let defaultChunk = TLSConnection.preferredWriteSize

    /// Sends `size` bytes per round, `rounds` rounds of each transport,
    /// using `certDir`/ca.pem and the bench1/bench2 certificates (make them
    /// with `generateCertificates`).
    public static func run(size: Int, rounds: Int, certDir: String, chunk: Int = defaultChunk) throws -> Result {
        precondition(size > 0 && rounds > 0 && chunk > 0)
        let ca = "\(certDir)/ca.pem"
        let server = try TLSContext(role: .server, caPath: ca, certificatePath: "\(certDir)/\(serverNode).pem",
                                    keyPath: "\(certDir)/\(serverNode).key")
        let client = try TLSContext(role: .client, caPath: ca, certificatePath: "\(certDir)/\(clientNode).pem",
                                    keyPath: "\(certDir)/\(clientNode).key")
        let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 64)
        defer { payload.deallocate() }
        var random = SystemRandomNumberGenerator()
        for i in stride(from: 0, to: chunk - 7, by: 8) {
            payload.storeBytes(of: random.next() as UInt64, toByteOffset: i, as: UInt64.self)
        }
        let bytes = UnsafeRawBufferPointer(payload)

        // Warm-up (untimed): first-touch page faults and lazy OpenSSL setup.
        let warmUp = min(size, 16 * 1024 * 1024)
        _ = try runOurs(size: warmUp, payload: bytes, server: server, client: client)
        _ = try TLSReferenceTransfer.run(size: warmUp, payload: bytes, server: server, client: client)

        var ours: [Double] = []
        var reference: [Double] = []
        var cipher = ""
        for round in 0..<rounds {
            // Alternate who goes first, so a load change on the shared
            // machine does not always hit the same side.
            func measureOurs() throws {
                ours.append(Double(size) / (try runOurs(size: size, payload: bytes, server: server, client: client)) / 1e6)
            }
            func measureReference() throws {
                let (seconds, name) = try TLSReferenceTransfer.run(size: size, payload: bytes, server: server, client: client)
                reference.append(Double(size) / seconds / 1e6)
                cipher = name
            }
            if round % 2 == 0 {
                try measureOurs()
                try measureReference()
            } else {
                try measureReference()
                try measureOurs()
            }
        }
        // The ratio is the median of each round's own ratio: the two halves
        // of a round ran seconds apart under about the same load, whereas the
        // medians of the two series may come from different moments.
        let ratios = zip(ours, reference).map { $0 / $1 }
        return Result(mbPerS: median(ours), referenceMbPerS: median(reference), ratio: median(ratios), size: size,
                      chunk: chunk, cipher: cipher, roundsMbPerS: ours, roundsReferenceMbPerS: reference)
    }

    /// Runs `script` (certs/gen-certs.sh) to make a CA and the bench1/bench2
    /// certificates in a new temporary directory, and returns its path; the
    /// caller removes it.
    public static func generateCertificates(script: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nsyncd-bench-\(UUID().uuidString.prefix(8))").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: script)
        process.arguments = ["--out", directory, serverNode, clientNode]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(description: "\(script) failed: \(String(decoding: output, as: UTF8.self))")
        }
        return directory
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    static func monotonicNanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    /// One round of our transport; returns the seconds from the client's
    /// first write to the server's last byte (handshake excluded).
    private static func runOurs(size: Int, payload: UnsafeRawBufferPointer,
                                server: TLSContext, client: TLSContext) throws -> Double {
        let round = BenchmarkRound(payload: payload)
        let serverThread = Thread { round.runServer(size: size, context: server) }
        serverThread.start()
        round.portReady.wait()
        if let error = round.serverError { round.serverDone.wait(); throw error }
        let clientThread = Thread { round.runClient(size: size, context: client) }
        clientThread.start()
        round.clientDone.wait()
        round.serverDone.wait()
        if let error = round.serverError ?? round.clientError { throw error }
        guard round.end > round.start else { throw Failure(description: "benchmark round measured no time") }
        return Double(round.end - round.start) / 1e9
    }
}

/// The state of one round of our transport, shared by its two threads:
/// each field is written by one thread before it signals, and read by the
/// caller after the waits (the semaphores order the accesses).
private final class BenchmarkRound {
    /// The bytes every write sends; owned by the caller, outlives the round.
    let payload: UnsafeRawBufferPointer
    let portReady = DispatchSemaphore(value: 0)
    let serverDone = DispatchSemaphore(value: 0)
    let clientDone = DispatchSemaphore(value: 0)
    var port = 0
    var start: UInt64 = 0
    var end: UInt64 = 0
    var serverError: Error?
    var clientError: Error?
    /// Generous: a round is a few seconds even on a loaded machine.
    let timeout: UInt64 = 300_000

    init(payload: UnsafeRawBufferPointer) {
        self.payload = payload
    }

    func runServer(size: Int, context: TLSContext) {
        defer { serverDone.signal() }
        var signalled = false
        do {
            let loop = try EventLoop()
            defer { loop.close() }
            let listener = TCPListener(loop: loop)
            try listener.bind(host: "127.0.0.1", port: 0)
            var received = 0
            var closed = false
            try listener.listen { [self] stream in
                listener.close()  // one connection per round
                do {
                    let connection = try TLSConnection(stream: stream, context: context, loop: loop)
                    connection.onData = { bytes in
                        received += bytes.count
                        if received >= size, self.end == 0 { self.end = TLSBenchmark.monotonicNanoseconds() }
                    }
                    connection.onClose = { error in
                        closed = true
                        if received < size {
                            self.serverError = error ?? TLSBenchmark.Failure(description: "server: connection closed after \(received) of \(size) bytes")
                        }
                    }
                    connection.start()
                } catch {
                    serverError = error
                    closed = true
                    stream.close()
                }
            }
            port = listener.localPort ?? 0
            portReady.signal()
            signalled = true
            if !loop.run(until: { closed }, timeout: timeout) {
                serverError = serverError ?? TLSBenchmark.Failure(description: "server: timed out after \(received) of \(size) bytes")
            }
        } catch {
            serverError = error
            if !signalled { portReady.signal() }
        }
    }

    func runClient(size: Int, context: TLSContext) {
        defer { clientDone.signal() }
        do {
            let loop = try EventLoop()
            defer { loop.close() }
            let stream = TCPStream(loop: loop)
            var done = false
            var sent = 0
            stream.connect(host: "127.0.0.1", port: port) { [self] error in
                if let error {
                    clientError = error
                    done = true
                    return stream.close()
                }
                do {
                    let connection = try TLSConnection(stream: stream, context: context, loop: loop)
                    func pump() {
                        while sent < size {
                            let n = min(payload.count, size - sent)
                            sent += n
                            if !connection.write(UnsafeRawBufferPointer(rebasing: payload[0..<n])) { return }
                        }
                        connection.onWritable = nil
                        connection.close()  // close_notify after the data
                    }
                    connection.onEstablished = { _ in
                        self.start = TLSBenchmark.monotonicNanoseconds()
                        pump()
                    }
                    connection.onWritable = { pump() }
                    connection.onClose = { error in
                        done = true
                        if let error { self.clientError = error }
                    }
                    connection.start()
                } catch {
                    clientError = error
                    done = true
                    stream.close()
                }
            }
            if !loop.run(until: { done }, timeout: timeout) {
                clientError = clientError ?? TLSBenchmark.Failure(description: "client: timed out after sending \(sent) of \(size) bytes")
            }
        } catch {
            clientError = error
        }
    }
}
