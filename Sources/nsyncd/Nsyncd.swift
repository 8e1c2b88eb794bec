import ArgumentParser
import Logging
import NsyncServer

/// The `nsyncd` command: runs the daemon by default (Nsync's command line),
/// plus `status`, `wait` and `bench`.
@main
struct Nsyncd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nsyncd",
        abstract: "Keep a directory identical on every host of a cluster (Raft + mutual TLS).",
        discussion: """
        Run one daemon per host; --cluster lists the OTHER nodes as HOST:CLUSTER_PORT:FILE_PORT.

        Examples:
          certs/gen-certs.sh --out certs n1 n2 n3
          nsyncd /srv/data --name n1 --file-server-port 8001 --cluster-port 10001 \\
              --cluster localhost:10002:8002,localhost:10003:8003 \\
              --ca certs/ca.pem --cert certs/n1.pem --key certs/n1.key
          nsyncd status /srv/data
          nsyncd wait /srv/data --timeout 30s
          nsyncd bench tls --size 256MiB
        """,
        subcommands: [Run.self, Status.self, Wait.self, Bench.self],
        defaultSubcommand: Run.self
    )
}

/// Parses `--log-level` values for swift-log.
extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Parses durations such as `30s`, `500ms`, `2m` or a bare number of seconds.
struct Duration: ExpressibleByArgument {
    var milliseconds: Int

    init?(argument: String) {
        let units: [(String, Int)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, factor) in units where argument.hasSuffix(suffix) {
            guard let n = Double(argument.dropLast(suffix.count)), n >= 0 else { return nil }
            milliseconds = Int(n * Double(factor))
            return
        }
        guard let n = Double(argument), n >= 0 else { return nil }
        milliseconds = Int(n * 1000)
    }
}

/// Parses sizes such as `512MiB`, `1GiB`, `64KiB` or a bare byte count.
struct ByteSize: ExpressibleByArgument {
    var bytes: Int

    init?(argument: String) {
        let units: [(String, Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30),
                                      ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("B", 1)]
        for (suffix, factor) in units where argument.hasSuffix(suffix) {
            guard let n = Int(argument.dropLast(suffix.count)), n > 0 else { return nil }
            bytes = n * factor
            return
        }
        guard let n = Int(argument), n > 0 else { return nil }
        bytes = n
    }
}

extension ByteSize: CustomStringConvertible {
    /// How a default shows in --help: `1GiB`, `512MiB`, `4KiB`.
    var description: String {
        for (suffix, factor) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] where bytes % factor == 0 {
            return "\(bytes / factor)\(suffix)"
        }
        return "\(bytes)"
    }

    var defaultValueDescription: String { description }
}

extension Duration: CustomStringConvertible {
    var description: String {
        milliseconds % 1000 == 0 ? "\(milliseconds / 1000)s" : "\(milliseconds)ms"
    }

    var defaultValueDescription: String { description }
}
