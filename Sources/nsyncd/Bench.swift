import ArgumentParser
import Foundation
import NsyncServer

/// `nsyncd bench ...`: throughput and latency figures, never pass/fail.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the TLS transport, Raft and directory sync on this machine.",
        discussion: """
        Examples:
          nsyncd bench tls --size 512MiB --rounds 3
          nsyncd bench tls --json
          nsyncd bench raft --seconds 10
          nsyncd bench sync --dir /dev/shm --json
        """,
        subcommands: [BenchTLS.self, BenchRaft.self, BenchSync.self]
    )
}

/// Where certs/gen-certs.sh is: next to the current directory, or in the
/// source tree the binary was built in (.build/<config>/nsyncd).
func certificateScript() throws -> String {
    let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    let candidates = [
        FileManager.default.currentDirectoryPath + "/certs/gen-certs.sh",
        executable.deletingLastPathComponent().appendingPathComponent("../../../certs/gen-certs.sh").standardized.path,
        executable.deletingLastPathComponent().appendingPathComponent("../../certs/gen-certs.sh").standardized.path,
    ]
    guard let script = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw ValidationError("cannot find certs/gen-certs.sh: run nsyncd bench from the nsyncd source directory")
    }
    return script
}

struct BenchTLS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tls",
        abstract: "Push bytes over loopback through nsyncd's TLS transport and through plain blocking OpenSSL.",
        discussion: "Only the ratio counts on a shared machine; the target is >= 0.9."
    )

    @Option(help: "Bytes per round (e.g. 512MiB).")
    var size: ByteSize = ByteSize(argument: "512MiB")!

    @Option(help: "Rounds of each transport, alternating.")
    var rounds = 3

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        let directory = try TLSBenchmark.generateCertificates(script: try certificateScript())
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try TLSBenchmark.run(size: size.bytes, rounds: rounds, certDir: directory)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        } else {
            print(String(format: "nsyncd TLS transport: %.0f MB/s (median of %d rounds of %d MiB)", result.mbPerS, rounds, size.bytes >> 20))
            print(String(format: "plain OpenSSL reference: %.0f MB/s", result.referenceMbPerS))
            print(String(format: "ratio: %.2f (target >= 0.90), cipher %@", result.ratio, result.cipher))
        }
    }
}

/// The running nsyncd binary, which the raft and sync benchmarks spawn as daemons.
func ownExecutable() throws -> String {
    if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return path }
    let path = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw ValidationError("cannot find the nsyncd executable (/proc/self/exe, \(CommandLine.arguments[0]))")
    }
    return path
}

/// Progress lines on standard error, so standard output stays one JSON object with --json.
func reportProgress(_ line: String) {
    printError(line)
}

struct BenchRaft: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raft",
        abstract: "Commit small commands through a 3-node cluster as fast as it goes; time leader failover.",
        discussion: """
        Throughput: 3 nodes in this process (each on its own event loop and thread, real TLS \
        on loopback, fsync'd Raft logs) and a closed loop of --window commands outstanding \
        on the leader; the commands issued in one loop turn share one Raft entry.

        Failover: 3 nsyncd daemons; the leader is killed with SIGKILL, the time until a \
        survivor leads is recorded, the dead one restarted; median of --failover-rounds.

        Examples:
          nsyncd bench raft
          nsyncd bench raft --seconds 5 --window 200 --json
        """
    )

    @Option(help: "Seconds of measured load.")
    var seconds: Double = 10

    @Option(help: "Commands outstanding at any time.")
    var window = 1_000

    @Option(help: "Bytes per command.")
    var commandBytes = 64

    @Option(help: "Leader kills to time (0 skips failover).")
    var failoverRounds = 5

    @Option(help: "Directory for the nodes' state (default: the system temporary directory).")
    var dir: String?

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        guard window > 0 else { throw ValidationError("--window must be at least 1") }
        guard commandBytes >= 8 else { throw ValidationError("--command-bytes must be at least 8 (the command's sequence number)") }
        guard commandBytes * 4 <= 1 << 20 else { throw ValidationError("--command-bytes must be at most 256KiB") }
        guard failoverRounds >= 0 else { throw ValidationError("--failover-rounds cannot be negative") }
    }

    func run() throws {
        BenchCleanup.installInterruptHandler()
        var options = RaftBenchmark.Options()
        options.seconds = seconds
        options.window = window
        options.commandBytes = commandBytes
        options.maxCommandsPerEntry = max(1, min(4_096, (512 << 10) / commandBytes))
        options.failoverRounds = failoverRounds
        if let dir { options.directory = dir }
        let result = try RaftBenchmark.run(options, executable: try ownExecutable(),
                                           certificateScript: try certificateScript(), progress: reportProgress)
        if json {
            print(try BenchSupport.json(result))
            return
        }
        print(String(format: "commits: %.0f commands/s (%.0f entries/s, %.1f commands per entry), %d-byte commands, window %d",
                     result.commitsPerS, result.entriesPerS, result.commandsPerEntry, result.commandBytes, result.window))
        print(String(format: "latency: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms",
                     result.p50Ms, result.p99Ms, result.p999Ms, result.maxMs))
        print(String(format: "fsync: leader %.1f entries per log fsync (%.0f fsyncs/s, %.0f persistence jobs/s), followers %.1f",
                     result.entriesPerFsync, result.leaderFsyncsPerS, result.leaderPersistBatchesPerS,
                     result.followerEntriesPerFsync))
        if result.failedCommands > 0 { print("failed and reissued: \(result.failedCommands) commands") }
        if let failover = result.failoverMs {
            print(String(format: "failover (kill -9 of the leader to a new leader): median %.0f ms; rounds: ", failover)
                + result.failoverRoundsMs.map { String(format: "%.0f", $0) }.joined(separator: ", "))
        }
        print("for scale: etcd 3.4 (3 members, mutual TLS, 2 cores) ~2,100 writes/s at 3.2 entries per fsync; failover ~1 s")
    }
}

struct BenchSync: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "Sync a large file and an edit in place of it, many small files, their folder's rename and single edits across 3 local daemons.",
        discussion: """
        Starts 3 nsyncd daemons on loopback with their directories under --dir, writes into \
        the first and measures until the other two hold identical, SHA-256-verified trees. \
        The 4 KiB overwritten in the large file and the rename of the small files' folder \
        report the file bytes they cost (a few blocks; 0: the other nodes moved their own \
        copies). \
        Also measures two references: the TLS transport alone and the disk floor (the large \
        file written twice with fsync, as the two receivers must). --dir /dev/shm takes the \
        disk out of the measure.

        Examples:
          nsyncd bench sync
          nsyncd bench sync --dir /dev/shm --json
          nsyncd bench sync --skip-large --small-files 1000 --edits 10 --skip-references
        """
    )

    @Option(help: "Parent directory of the daemons' trees (default: the system temporary directory).")
    var dir: String?

    @Option(help: "Size of the large file.")
    var largeSize: ByteSize = ByteSize(argument: "1GiB")!

    @Flag(help: "Skip the large file (and the disk floor).")
    var skipLarge = false

    @Option(help: "Number of small files.")
    var smallFiles = 10_000

    @Option(help: "Folders the small files are spread over.")
    var smallFolders = 100

    @Option(help: "Size of each small file.")
    var smallSize: ByteSize = ByteSize(argument: "4KiB")!

    @Option(help: "Single edits to time.")
    var edits = 50

    @Option(help: "Bytes for the TLS reference.")
    var tlsSize: ByteSize = ByteSize(argument: "256MiB")!

    @Flag(help: "Skip the TLS and disk-floor references.")
    var skipReferences = false

    @Flag(help: "Keep the daemons' trees and logs after the run.")
    var keep = false

    @Option(help: "The daemons' log level (with --keep, to read what they did).")
    var logLevel = "warning"

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard smallFiles >= 0, edits >= 0 else { throw ValidationError("--small-files and --edits cannot be negative") }
        guard smallFolders >= 1 else { throw ValidationError("--small-folders must be at least 1") }
        if let dir, !FileManager.default.fileExists(atPath: dir) {
            throw ValidationError("--dir \(dir) does not exist; create it first")
        }
    }

    func run() throws {
        BenchCleanup.installInterruptHandler()
        var options = SyncBenchmark.Options()
        if let dir { options.directory = dir }
        options.largeBytes = skipLarge ? 0 : largeSize.bytes
        options.smallFiles = smallFiles
        options.smallFolders = smallFolders
        options.smallFileBytes = smallSize.bytes
        options.edits = edits
        options.tlsBytes = skipReferences ? 0 : tlsSize.bytes
        options.diskFloor = !skipReferences
        options.keep = keep
        options.logLevel = logLevel
        let result = try SyncBenchmark.run(options, executable: try ownExecutable(),
                                           certificateScript: try certificateScript(), progress: reportProgress)
        if json {
            print(try BenchSupport.json(result))
            return
        }
        func figure(_ value: Double?, _ format: String) -> String { value.map { String(format: format, $0) } ?? "skipped" }
        print("large file (\(result.largeBytes >> 20) MiB): " + figure(result.largeMbPerS, "%.0f MB/s")
              + (result.largeSentByOrigin.map { String(format: ", %.2f copies sent by n1", $0) } ?? ""))
        if let seconds = result.largeEditS {
            print(String(format: "4 KiB of it overwritten in place: %.2f s, ", seconds)
                  + (result.largeEditBytesReceived.map { "\($0) bytes of file data received by n2 and n3" } ?? "bytes received unknown"))
        }
        print("small files (\(result.smallFiles)): " + figure(result.smallFilesS, "%.2f s"))
        if let seconds = result.renameS {
            print(String(format: "rename of their folder: %.2f s, ", seconds)
                  + (result.renameBytesReceived.map { "\($0) bytes of file data received by n2 and n3" } ?? "bytes received unknown"))
        }
        print("edits (\(result.edits)): p50 " + figure(result.editP50Ms, "%.1f ms") + ", p99 " + figure(result.editP99Ms, "%.1f ms"))
        print("peak RSS: " + result.peakRssMibPerNode.sorted { $0.key < $1.key }
            .map { "\($0.key) " + String(format: "%.0f MiB", $0.value) }.joined(separator: ", ")
            + (result.largePeakRssMib.map { String(format: " (at most %.0f MiB up to the large file's edit)", $0) } ?? ""))
        print("references: TLS transport " + figure(result.tlsMbPerS, "%.0f MB/s")
            + ", disk floor (written twice, fsync) " + figure(result.diskFloorMbPerS, "%.0f MB/s"))
        if keep { print("trees and logs kept in \(result.directory)") }
    }
}
