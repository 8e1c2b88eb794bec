import ArgumentParser
import Foundation
import Logging
import NsyncServer

/// `nsyncd PATH ...`: runs the daemon in the foreground until SIGTERM/SIGINT.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the sync daemon for PATH (the default command).",
        discussion: """
        Examples:
          nsyncd /srv/data --name n1 --file-server-port 8001 --cluster-port 10001 \\
              --cluster host2:10002:8002,host3:10003:8003 \\
              --ca certs/ca.pem --cert certs/n1.pem --key certs/n1.key
          nsyncd run /srv/data --host 10.0.0.1 ... --log-level debug
        """
    )

    @Argument(help: "The directory to keep in sync (its .nsync/ holds state and is never synced).")
    var path: String

    @Option(help: "Port for file transfers (TLS).")
    var fileServerPort: Int

    @Option(help: "Port for Raft consensus traffic (TLS).")
    var clusterPort: Int

    @Option(help: "The OTHER nodes: [NAME@]HOST:CLUSTER_PORT:FILE_PORT,...")
    var cluster: String

    @Option(help: "This node's name; must match its certificate's CN or SAN.")
    var name: String

    @Option(help: "Cluster CA certificate (PEM).")
    var ca: String

    @Option(help: "This node's certificate (PEM), signed by the cluster CA.")
    var cert: String

    @Option(help: "This node's private key (PEM).")
    var key: String

    @Option(help: "Address to listen on (default: all interfaces).")
    var host: String?

    @Option(help: "trace, debug, info, notice, warning, error.")
    var logLevel: Logger.Level = .info

    @Option(help: ArgumentHelp("Seconds of silence after which a peer connection is taken for dead and "
                               + "dialed again (keepalives go every second, or four times per timeout if it is shorter).", valueName: "seconds"))
    var peerTimeout: Double = Double(Channel.defaultSilenceLimit) / 1000

    @Option(help: ArgumentHelp("Compare the whole tree with what this node knows every this many seconds, "
                               + "for changes inotify does not report (a file written through another of its hard links "
                               + "or through a memory mapping); 0: never.", valueName: "seconds"))
    var rescanInterval: Double = Double(NodeConfig.Tuning().rescanInterval) / 1000

    @Option(help: ArgumentHelp("Snapshot the index after this many applied Raft entries.", visibility: .hidden))
    var snapshotEntries: Int?

    @Option(help: ArgumentHelp("Keep the bytes of files deleted elsewhere this many ms, for renames.", visibility: .hidden))
    var keptFileLifetime: UInt64?

    @Option(help: ArgumentHelp("Check directories kept for their ignored files every this many ms.", visibility: .hidden))
    var keptDirectoryCheck: UInt64?

    @Option(help: ArgumentHelp("Ask other holders after a holder answered nothing for this many ms.", visibility: .hidden))
    var fetchStallLimit: UInt64?

    @Option(help: ArgumentHelp("Serve offered files, and keep early copies a restart cut off, this many ms.",
                               visibility: .hidden))
    var offerLifetime: UInt64?

    func run() throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = logLevel
            return handler
        }
        do {
            var config = NodeConfig(
                root: path, name: name, listenHost: host, clusterPort: clusterPort, filePort: fileServerPort,
                peers: try PeerAddress.parseList(cluster), caPath: ca, certificatePath: cert, keyPath: key)
            if let snapshotEntries { config.tuning.snapshotEntries = snapshotEntries }
            if let keptFileLifetime { config.tuning.keptFileLifetime = keptFileLifetime }
            if let keptDirectoryCheck { config.tuning.keptDirectoryCheck = max(keptDirectoryCheck, 100) }
            if let fetchStallLimit { config.tuning.fetchStallLimit = max(fetchStallLimit, 1_000) }
            if let offerLifetime { config.tuning.offerLifetime = max(offerLifetime, 1_000) }
            guard peerTimeout.isFinite, peerTimeout >= 2, peerTimeout <= 3_600 else {
                throw StartupError.invalidPeerTimeout(peerTimeout)
            }
            config.tuning.peerSilenceLimit = UInt64(peerTimeout * 1000)
            guard rescanInterval.isFinite, rescanInterval == 0 || (rescanInterval >= 1 && rescanInterval <= 604_800) else {
                throw StartupError.invalidRescanInterval(rescanInterval)
            }
            config.tuning.rescanInterval = UInt64(rescanInterval * 1000)
            config = try config.validated()
            try Daemon.run(config: config, logger: Logger(label: "nsyncd"))
        } catch let error as StartupError {
            printError("nsyncd: \(error)")
            throw ExitCode(2)
        } catch let failure as NodeFailure {
            printError("nsyncd: stopped: \(failure)")
            throw ExitCode(1)
        }
    }
}

func printError(_ message: String) {
    var stderr = StandardError()
    print(message, to: &stderr)
}

/// Writes to standard error (for one-line fatal messages).
struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileHandle.standardError.write(Data(string.utf8))
    }
}
