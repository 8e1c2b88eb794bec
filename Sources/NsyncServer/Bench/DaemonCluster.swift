import Foundation

/// Real `nsyncd` daemons on loopback for the benchmarks, each a child process
/// of the benchmark with its own PATH, ports and certificate: starts them,
/// asks them for their status over the control socket, kills one with
/// SIGKILL and starts it again on the same directory, reads their peak
/// memory, and stops them all (also when the benchmark fails: `stopAll` in a
/// `defer`). Used from the one thread that runs a benchmark.
final class DaemonCluster {
    /// One daemon: where it lives and, while it runs, its process.
    struct Member {
        let name: String
        /// The synced directory.
        let root: String
        let clusterPort: Int
        let filePort: Int
        /// Its stdout and stderr, kept across restarts.
        let logPath: String
        var process: Process?
    }

    let executable: String
    let certificateDirectory: String
    let logLevel: String
    private(set) var members: [Member] = []

    /// Plans one daemon per name with its PATH at `<directory>/<name>` (made
    /// here) and its log at `<directory>/<name>.log`; starts nothing. The
    /// certificates `<name>.pem`/`.key` and `ca.pem` must be in
    /// `certificateDirectory`.
    init(executable: String, directory: String, certificateDirectory: String, names: [String],
         logLevel: String = "warning") throws {
        self.executable = executable
        self.certificateDirectory = certificateDirectory
        self.logLevel = logLevel
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw BenchSupport.Failure("\(executable) is not an executable nsyncd (build it first: swift build -c release)")
        }
        let ports = try BenchSupport.freePorts(2 * names.count)
        for (i, name) in names.enumerated() {
            let root = "\(directory)/\(name)"
            try FileDescriptor.makeDirectories(root)
            members.append(Member(name: name, root: root, clusterPort: ports[2 * i], filePort: ports[2 * i + 1],
                                  logPath: "\(directory)/\(name).log"))
        }
    }

    deinit { stopAll() }

    var count: Int { members.count }

    func isRunning(_ i: Int) -> Bool { members[i].process?.isRunning ?? false }

    /// Spawns daemon `i` (which must not be running).
    func start(_ i: Int) throws {
        precondition(!isRunning(i), "daemon \(members[i].name) is already running")
        let member = members[i]
        let peers = members.indices.filter { $0 != i }.map { j in
            "\(members[j].name)@127.0.0.1:\(members[j].clusterPort):\(members[j].filePort)"
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [
            "run", member.root, "--name", member.name, "--host", "127.0.0.1",
            "--cluster-port", "\(member.clusterPort)", "--file-server-port", "\(member.filePort)",
            "--cluster", peers.joined(separator: ","),
            "--ca", "\(certificateDirectory)/ca.pem",
            "--cert", "\(certificateDirectory)/\(member.name).pem",
            "--key", "\(certificateDirectory)/\(member.name).key",
            "--log-level", logLevel,
        ]
        if !FileManager.default.fileExists(atPath: member.logPath) {
            _ = FileManager.default.createFile(atPath: member.logPath, contents: nil)
        }
        guard let log = FileHandle(forWritingAtPath: member.logPath) else {
            throw BenchSupport.Failure("cannot open \(member.logPath) for the daemon's output")
        }
        log.seekToEndOfFile()
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        do {
            try process.run()
        } catch {
            throw BenchSupport.Failure("cannot start \(executable): \(error)")
        }
        try? log.close()
        BenchCleanup.register(process)
        members[i].process = process
    }

    func startAll() throws {
        for i in members.indices where !isRunning(i) { try start(i) }
    }

    /// SIGKILL, as a crash or `kill -9`: nothing is flushed or closed politely.
    func kill(_ i: Int) {
        guard let process = members[i].process else { return }
        if process.isRunning { _ = Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        BenchCleanup.unregister(process)
        members[i].process = nil
    }

    /// SIGTERM (the daemon saves its state and closes), then SIGKILL after `timeout` seconds.
    func stop(_ i: Int, timeout: Double = 10) {
        guard let process = members[i].process else { return }
        if process.isRunning { process.terminate() }
        let deadline = BenchSupport.now() + UInt64(timeout * 1e9)
        while process.isRunning && BenchSupport.now() < deadline { BenchSupport.sleep(milliseconds: 10) }
        kill(i)
    }

    func stopAll() {
        for i in members.indices where members[i].process?.isRunning == true { members[i].process?.terminate() }
        for i in members.indices { stop(i) }
    }

    /// The daemon's own answer to `nsyncd status`, or nil if it does not answer in time.
    func status(_ i: Int, timeoutMilliseconds: UInt64 = 2_000) -> NodeStatus? {
        try? ControlClient.status(root: members[i].root, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Throws, with the end of its log, if a daemon that should run has exited.
    func checkAlive(_ indices: [Int]) throws {
        for i in indices where members[i].process != nil && !isRunning(i) {
            throw BenchSupport.Failure("daemon \(members[i].name) exited (status \(members[i].process!.terminationStatus)); "
                + "the end of \(members[i].logPath):\n\(logTail(i))")
        }
    }

    /// Waits until every running daemon names the same leader, which runs and
    /// is connected to all its peers; returns the leader's index.
    @discardableResult
    func waitUntilFormed(timeout: Double = 60) throws -> Int {
        let running = members.indices.filter { isRunning($0) }
        var leader = -1
        try BenchSupport.poll("a cluster of \(running.count) daemons with one leader", timeout: timeout, interval: 20) {
            try checkAlive(running)
            let statuses = running.map { status($0) }
            guard let first = statuses.first ?? nil, let name = first.leader,
                  statuses.allSatisfy({ $0?.leader == name }),
                  let index = members.firstIndex(where: { $0.name == name }), running.contains(index),
                  let leaderStatus = statuses[running.firstIndex(of: index)!], leaderStatus.role == "leader",
                  leaderStatus.peers.allSatisfy(\.connected) else { return false }
            leader = index
            return true
        }
        return leader
    }

    /// Peak resident set size (`VmHWM` in /proc/PID/status) in MiB, while the daemon runs.
    func peakResidentMiB(_ i: Int) -> Double? {
        guard let process = members[i].process, process.isRunning,
              let text = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kilobytes = Double(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") else { return nil }
        return kilobytes / 1024
    }

    /// The last lines of daemon `i`'s log, for error messages.
    func logTail(_ i: Int, lines: Int = 15) -> String {
        guard let text = try? String(contentsOfFile: members[i].logPath, encoding: .utf8) else { return "(no log)" }
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }
}
