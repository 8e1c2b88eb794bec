import Foundation
import Logging
import XCTest
@testable import NsyncServer

/// A `TransferServer` serving `disk.img` (version 1) from `root` as node1,
/// on its own loop and thread, with the own-blocks hooks set by the test
/// (`TransferServerKnownBlocksTests`; `TransferServerHolesTests` serves a
/// sparse file through it, no hooks, or relays it from a `RelayFeed` the
/// test feeds on the server's loop).
final class KnownBlocksServer {
    private(set) var port = 0
    private let lock = NSLock()
    private var known: BlockDigests?
    private var pending: Bool
    private var loop: EventLoop?
    private var server: TransferServer?
    private var stopping = false
    private var notAsKnown: [String] = []
    /// The paths the server said were not on disk as announced (`heldFileNotAsKnown`).
    var pathsNotAsKnown: [String] { lock.withLock { notAsKnown } }
    private let done = DispatchSemaphore(value: 0)

    init(root: String, size: UInt64, hash: [UInt8], certificates: TestCertificates, pending: Bool,
         known: BlockDigests?, wait: UInt64, relay: RelayFeed? = nil) throws {
        self.pending = pending
        self.known = known
        let started = DispatchSemaphore(value: 0)
        let result = StartResult()
        let thread = Thread { [self] in
            do {
                let loop = try EventLoop()
                let context = try TLSContext(role: .server, caPath: certificates.caPath,
                                             certificatePath: certificates.certificatePath("node1"),
                                             keyPath: certificates.keyPath("node1"))
                var logger = Logger(label: "known-blocks-server")
                logger.logLevel = .debug
                let server = TransferServer(loop: loop, root: root, chunkSize: 256 << 10, logger: logger) { path, version in
                    guard path == "disk.img", version == 1 else { return .refuse(.init(status: .notFound, message: "only disk.img here")) }
                    return relay.map { .relay($0) } ?? .serve(size: size, hash: hash)
                }
                server.maxWaitForKnownBlocks = wait
                server.knownBlocks = { [self] theirs, blockSize in
                    lock.withLock { theirs == hash && self.known?.blockSize == blockSize ? self.known : nil }
                }
                server.knownBlocksPending = { [self] theirs, _ in lock.withLock { theirs == hash && self.pending } }
                server.heldFileNotAsKnown = { [self] path in lock.withLock { notAsKnown.append(path) } }
                let listener = TCPListener(loop: loop)
                try listener.bind(host: "127.0.0.1", port: 0)
                try listener.listen { stream in
                    guard let connection = try? TLSConnection(stream: stream, context: context, loop: loop, logger: logger) else {
                        return stream.close()
                    }
                    let channel = Channel(connection: connection, kind: .file, localName: "node1",
                                          clusterID: context.clusterID, logger: logger)
                    server.accept(channel)
                    channel.start()
                }
                lock.withLock {
                    self.loop = loop
                    self.server = server
                }
                result.set(.success(listener.localPort ?? 0))
                started.signal()
                while !isStopping { _ = loop.run(until: { self.isStopping }, timeout: 100) }
                server.closeAll()
                listener.close()
                _ = loop.run(until: { false }, timeout: 50)
                lock.withLock {
                    self.loop = nil
                    self.server = nil
                }
                loop.close()
            } catch {
                result.set(.failure(error))
                started.signal()
            }
            done.signal()
        }
        thread.start()
        started.wait()
        port = try result.get().get()
    }

    private var isStopping: Bool { lock.withLock { stopping } }

    /// The pass over the blocks ends, with `known` as its result; the
    /// server is told, as the node does (`Fetcher.hooks.ownBlocksSettled`).
    func settle(known: BlockDigests?) {
        guard let loop = lock.withLock({ self.loop }) else { return }
        _ = loop.execute { [self] in
            let server = lock.withLock {
                self.known = known
                pending = false
                return self.server
            }
            server?.knownBlocksSettled()
        }
    }

    /// Runs `body` on the server's loop (where its relay feed lives).
    func onLoop(_ body: @escaping () -> Void) {
        guard let loop = lock.withLock({ self.loop }) else { return }
        _ = loop.execute(body)
    }

    /// Stops the loop and closes every connection (waits up to 5 s).
    func stop() {
        lock.withLock { stopping = true }
        _ = done.wait(timeout: .now() + 5)
    }
}

/// What the server thread reports of its start, read by the test thread.
private final class StartResult: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<Int, Error> = .failure(DaemonTestError("the server thread did not start"))
    func set(_ value: Result<Int, Error>) { lock.withLock { result = value } }
    func get() -> Result<Int, Error> { lock.withLock { result } }
}
