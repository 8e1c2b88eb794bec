import Logging

/// Runs one node in the foreground on the calling thread until SIGTERM or
/// SIGINT, for the `nsyncd` command.
public enum Daemon {
    public static func run(config: NodeConfig, logger: Logger) throws {
        ProcessMemory.reuseLargeBuffers()
        let loop = try EventLoop()
        let node: Node
        do {
            node = try Node(config: config, loop: loop, logger: logger)
        } catch {
            loop.close()
            throw error
        }
        node.onStopped = { loop.stop() }
        do {
            try node.start()
        } catch {
            // It never started: the caller's one-line error says why, without
            // "stopping" / "stopped" around it.
            node.logger.logLevel = .warning
            node.stop()
            loop.run()
            loop.close()
            throw error
        }
        loop.run()
        loop.close()
        if let failure = node.failure { throw NodeFailure(description: failure) }
    }
}

/// The node stopped on its own because it could not go on safely.
public struct NodeFailure: Error, CustomStringConvertible {
    public var description: String
}
