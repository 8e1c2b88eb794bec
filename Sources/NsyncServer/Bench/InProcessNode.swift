import Foundation
import Logging

/// One `Node` on its own EventLoop and thread inside the benchmark process:
/// real TLS, sockets and Raft storage, but no process boundary, so the Raft
/// benchmark can propose through the node's `RaftDriver`. The node and its
/// loop belong to that thread; other threads reach them only through
/// `perform`, which goes through `EventLoop.execute`.
final class InProcessNode {
    let config: NodeConfig
    private let logger: Logger
    private var loop: EventLoop?
    private var node: Node?
    private var startError: Error?
    private let ready = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private var running = false

    var name: NodeName { config.name }

    init(config: NodeConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// Creates the loop and the node on a new thread and starts it; returns
    /// once the node started (or throws why it could not).
    func start() throws {
        let thread = Thread { [self] in runThread() }
        thread.name = "bench-\(config.name)"
        thread.start()
        ready.wait()
        if let startError {
            finished.wait()
            throw startError
        }
        running = true
    }

    private func runThread() {
        defer { finished.signal() }
        let loop: EventLoop
        do {
            loop = try EventLoop()
        } catch {
            startError = error
            ready.signal()
            return
        }
        do {
            let node = try Node(config: config, loop: loop, logger: logger)
            node.onStopped = { loop.stop() }
            do {
                try node.start()
            } catch {
                // As Daemon.run: let the half-started node close what it opened.
                node.stop()
                loop.run()
                throw error
            }
            self.node = node
            self.loop = loop
            ready.signal()
            loop.run()
        } catch {
            startError = error
            ready.signal()
        }
        loop.close()
    }

    /// Runs `body` on the node's loop thread and returns its result; nil if
    /// the node is not running.
    func perform<T>(_ body: @escaping (Node, EventLoop) -> T) -> T? {
        guard running, let loop, let node else { return nil }
        var result: T?
        let done = DispatchSemaphore(value: 0)
        guard loop.execute({
            result = body(node, loop)
            done.signal()
        }) else { return nil }
        done.wait()
        return result
    }

    /// The node's Raft role and leader as it sees them.
    var raftStatus: RaftStatus? {
        perform { node, _ in node.driver == nil ? nil : node.raftStatus } ?? nil
    }

    /// How much the node's Raft driver has persisted so far.
    struct Persistence {
        /// `storage.sync` calls (one thread-pool job each).
        var batches = 0
        /// Batches that appended entries: one log fdatasync each.
        var logSyncs = 0
        var entries = 0
    }

    var persistence: Persistence? {
        perform { node, _ in
            node.driver.map { Persistence(batches: $0.fsyncCount, logSyncs: $0.logSyncCount, entries: $0.entriesPersisted) }
        } ?? nil
    }

    /// Stops the node as SIGTERM would and waits for its thread to end.
    func stop() {
        guard running, let loop, let node else { return }
        running = false
        loop.execute { node.stop() }
        finished.wait()
        self.node = nil
        self.loop = nil
    }
}
