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
        """,
        subcommands: [BenchTLS.self]
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
