import Foundation

/// A cluster CA and node certificates in a temporary directory, made by
/// running the real certs/gen-certs.sh, plus the certificates an intruder
/// would bring: one signed by a foreign CA and one that has expired.
/// `shared` is made once per test process and removed at exit; tests that
/// change files make their own with `init(nodes:)` and call `remove()`.
final class TestCertificates {
    /// Holds ca.pem/ca.key and NAME.pem/NAME.key for every node, and "expired".
    let directory: String
    /// A second CA and its "intruder" certificate: valid, but not ours.
    let foreignDirectory: String
    let nodes: [String]

    var caPath: String { "\(directory)/ca.pem" }
    var caKeyPath: String { "\(directory)/ca.key" }
    func certificatePath(_ node: String) -> String { "\(directory)/\(node).pem" }
    func keyPath(_ node: String) -> String { "\(directory)/\(node).key" }

    /// Signed by the cluster CA, but its validity ended yesterday.
    var expiredCertificatePath: String { certificatePath("expired") }
    var expiredKeyPath: String { keyPath("expired") }
    /// Signed by another CA (which the cluster does not trust).
    var foreignCAPath: String { "\(foreignDirectory)/ca.pem" }
    var foreignCertificatePath: String { "\(foreignDirectory)/intruder.pem" }
    var foreignKeyPath: String { "\(foreignDirectory)/intruder.key" }

    /// certs/gen-certs.sh in this checkout.
    static let scriptPath: String = {
        // Tests/NsyncServerTests/Support/TestCertificates.swift -> repository root
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("certs/gen-certs.sh").path
    }()

    /// node1...node3 plus the refused kinds, made once for the whole test run.
    static let shared: TestCertificates = {
        do {
            let certificates = try TestCertificates(nodes: ["node1", "node2", "node3"])
            sharedDirectories = [certificates.directory, certificates.foreignDirectory]
            atexit {
                for path in TestCertificates.sharedDirectories {
                    try? FileManager.default.removeItem(atPath: path)
                }
            }
            return certificates
        } catch {
            fatalError("cannot create test certificates: \(error)")
        }
    }()
    private static var sharedDirectories: [String] = []

    init(nodes: [String]) throws {
        self.nodes = nodes
        let base = FileManager.default.temporaryDirectory.path
        directory = "\(base)/nsync-certs-\(getpid())-\(UUID().uuidString.prefix(8))"
        foreignDirectory = directory + "-foreign"
        try Self.run(["--out", directory] + nodes)
        try Self.run(["--out", directory, "--days", "-1", "expired"])
        try Self.run(["--out", foreignDirectory, "intruder"])
    }

    /// Deletes both directories.
    func remove() {
        try? FileManager.default.removeItem(atPath: directory)
        try? FileManager.default.removeItem(atPath: foreignDirectory)
    }

    struct CommandFailed: Error, CustomStringConvertible {
        var arguments: [String]
        var status: Int32
        var output: String
        var description: String { "\(arguments.joined(separator: " ")) exited \(status): \(output)" }
    }

    /// Runs gen-certs.sh and returns its combined output; throws on failure.
    @discardableResult
    static func run(_ arguments: [String]) throws -> String {
        try runCommand(scriptPath, arguments)
    }

    /// Runs any command (openssl, stat, ...) and returns stdout+stderr.
    @discardableResult
    static func runCommand(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/env")
        process.arguments = executable.hasPrefix("/") ? arguments : [executable] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let output = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw CommandFailed(arguments: [executable] + arguments, status: process.terminationStatus, output: output)
        }
        return output
    }
}
