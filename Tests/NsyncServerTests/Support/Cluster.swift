import Foundation
import XCTest
@testable import NsyncServer

/// A cluster of real `nsyncd` processes on loopback, for end-to-end tests:
/// a temporary directory (one synced directory and one log per node),
/// certificates from certs/gen-certs.sh, free ports, and the processes
/// themselves, all removed by `shutDown()` (or deinit). Nodes are numbered
/// from 0; node i is named "node\(i + 1)". Every wait polls a condition
/// until a deadline and fails with what the nodes were doing. The test's
/// thread only (the processes die with the thread that started them).
final class TestCluster {
    /// One member: where it lives and, while it runs, its process.
    final class Member {
        let name: String
        let root: String
        let logPath: String
        /// Chosen free; chosen again if a daemon finds one taken at start-up.
        fileprivate(set) var clusterPort: Int
        fileprivate(set) var filePort: Int
        fileprivate(set) var process: ClusterProcess?
        /// Every process this member has had, so teardown can reap them all.
        fileprivate var processes: [ClusterProcess] = []
        let hashes = ClusterHashCache()

        init(name: String, root: String, logPath: String, clusterPort: Int, filePort: Int) {
            self.name = name
            self.root = root
            self.logPath = logPath
            self.clusterPort = clusterPort
            self.filePort = filePort
        }

        var isRunning: Bool { process?.isRunning ?? false }
    }

    /// The temporary directory holding everything: n1/ ... (synced roots), logs, certs.
    let directory: String
    let members: [Member]
    let extraArguments: [String]
    /// Whether `--cluster` gives each peer's name (see `init`).
    let namesPeers: Bool
    /// The ports node `node` dials for `peer`, when something stands between
    /// them (a `PartitionProxy`); nil: the peer's own ports.
    let peerPorts: ((_ node: Int, _ peer: Int, _ ports: (cluster: Int, file: Int)) -> (cluster: Int, file: Int))?
    private let certificates: TestCertificates
    private let ownsCertificates: Bool
    /// Who the daemons run as, when not as the test process's user.
    let daemonUser: (uid: uid_t, gid: gid_t)?
    /// The daemon's executable (a copy every user can run, for `daemonUser`).
    private let daemonExecutable: String
    private var isShutDown = false

    /// The nsyncd built next to the running test bundle.
    static let executable: String = {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var candidates = [bundle.deletingLastPathComponent().appendingPathComponent("nsyncd").path]
        // `swift test` may start the bundle through a runner; the bundle path is then in Bundle.main.
        candidates.append(URL(fileURLWithPath: Bundle.main.bundlePath).deletingLastPathComponent().appendingPathComponent("nsyncd").path)
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }()

    var count: Int { members.count }
    var names: [String] { members.map(\.name) }

    /// Creates the directories and certificates, picks ports and starts
    /// `nodes` daemons, each with `extraArguments` (e.g. `--snapshot-entries 50`).
    /// With `running`, only those nodes start (the others join later with
    /// `restart`, their directories already made), and every node names its
    /// peers (`NAME@HOST:...`): Raft counts votes by name, and a name is
    /// otherwise learned only from the peer's certificate once it answers.
    /// With `peerPorts`, node i dials peer j at `peerPorts(i, j, ports)`
    /// instead of at j's own `ports`.
    /// With `unprivileged`, the daemons never run as root: when the tests
    /// do, the daemons run as nobody (65534), which owns the synced
    /// directories and certificates, from a copy of nsyncd in the cluster's
    /// directory (the build tree may be in a home no other user can enter).
    /// Returns once every started process runs; call `waitForLeader()` to
    /// know Raft is up.
    init(nodes: Int = 3, extraArguments: [String] = [], label: String = "e2e", running: [Int]? = nil,
         peerPorts: ((_ node: Int, _ peer: Int, _ ports: (cluster: Int, file: Int)) -> (cluster: Int, file: Int))? = nil,
         unprivileged: Bool = false, namesPeers: Bool? = nil) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.executable) else {
            throw ClusterError("""
                nsyncd is not built at \(Self.executable): end-to-end tests start the real daemon. \
                Build it with `swift build --build-tests` (which builds every product) before `swift test --skip-build`.
                """)
        }
        let names = (1...nodes).map { "node\($0)" }
        daemonUser = unprivileged && geteuid() == 0 ? (uid: 65534, gid: 65534) : nil
        if nodes <= TestCertificates.shared.nodes.count && daemonUser == nil {
            certificates = TestCertificates.shared
            ownsCertificates = false
        } else {
            certificates = try TestCertificates(nodes: names)
            ownsCertificates = true
        }
        // Short, because the control socket (root/.nsync/control.sock) must fit sun_path's 108 bytes.
        let ports = try Self.portPicker(2 * nodes)
        let base = NSTemporaryDirectory().hasSuffix("/") ? NSTemporaryDirectory() : NSTemporaryDirectory() + "/"
        var template = Array("\(base)nsync-\(label)-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw ClusterError("mkdtemp \(base): \(String(cString: strerror(errno)))") }
        let directory = String(cString: template)
        self.directory = directory
        self.extraArguments = extraArguments
        self.namesPeers = namesPeers ?? (running != nil)
        self.peerPorts = peerPorts
        members = names.enumerated().map { i, name in
            Member(name: name, root: "\(directory)/n\(i + 1)", logPath: "\(directory)/\(name).log",
                   clusterPort: ports[2 * i], filePort: ports[2 * i + 1])
        }
        daemonExecutable = daemonUser == nil ? Self.executable : directory + "/nsyncd"
        do {
            for member in members {
                try FileManager.default.createDirectory(atPath: member.root, withIntermediateDirectories: true)
            }
            if let user = daemonUser {
                try FileManager.default.copyItem(atPath: Self.executable, toPath: daemonExecutable)
                chmod(daemonExecutable, 0o755)
                let owner = "\(user.uid):\(user.gid)"
                _ = try TestCertificates.runCommand("chown", [owner, directory] + members.map(\.root))
                _ = try TestCertificates.runCommand("chown", ["-R", owner, certificates.directory])
            }
            try startAll(running ?? Array(members.indices))
        } catch {
            shutDown()
            throw error
        }
    }

    deinit { shutDown() }

    // MARK: paths

    /// Absolute path of `relative` in node `node`'s synced directory.
    func path(_ node: Int, _ relative: String = "") -> String {
        relative.isEmpty ? members[node].root : members[node].root + "/" + relative
    }

    // MARK: processes

    /// The command line node `node` runs with.
    func arguments(_ node: Int) -> [String] {
        let member = members[node]
        let others = members.indices.filter { $0 != node }.map { peer in
            let own = (cluster: members[peer].clusterPort, file: members[peer].filePort)
            let ports = peerPorts?(node, peer, own) ?? own
            return (namesPeers ? "\(members[peer].name)@" : "") + "127.0.0.1:\(ports.cluster):\(ports.file)"
        }
        return [member.root, "--name", member.name, "--host", "127.0.0.1",
                "--cluster-port", "\(member.clusterPort)", "--file-server-port", "\(member.filePort)",
                "--cluster", others.joined(separator: ","),
                "--ca", certificates.caPath, "--cert", certificates.certificatePath(member.name),
                "--key", certificates.keyPath(member.name), "--log-level", "debug"] + extraArguments
    }

    /// Starts every node and waits until each answers on its control socket.
    /// A free port can be taken by someone else between our probe and the
    /// daemon's bind: then every node gets new ports and starts again.
    private func startAll(_ nodes: [Int], attempts: Int = 3) throws {
        for attempt in 1...attempts {
            for i in nodes { try start(i) }
            let lost = try poll("every node to answer on its control socket", timeout: 15, stopOnExit: false) { () -> Int?? in
                if let dead = members.indices.first(where: { members[$0].process.map { !$0.isRunning } ?? false }) {
                    return .some(dead)
                }
                return nodes.allSatisfy { (try? status($0, timeout: 1)) != nil } ? .some(nil) : nil
            }
            guard let dead = lost else { return }
            let portTaken = log(dead).contains("already in use")
            guard portTaken, attempt < attempts else {
                // The cluster was not made: no teardown prints its log.
                throw failure("\(members[dead].name) \(members[dead].process!.exitDescription) at start-up; its log:\n"
                              + logTail(dead, lines: 20))
            }
            for member in members { member.process?.stop(grace: 5); member.process = nil }
            let ports = try Self.portPicker(2 * members.count)
            for (i, member) in members.enumerated() {
                member.clusterPort = ports[2 * i]
                member.filePort = ports[2 * i + 1]
            }
        }
    }

    private func start(_ node: Int) throws {
        let member = members[node]
        appendToLog(node, "==== harness: starting \(member.name) at \(Self.timestamp()) ====")
        let process = try ClusterProcess(daemonExecutable, arguments(node), logPath: member.logPath, user: daemonUser)
        member.process = process
        member.processes.append(process)
    }

    /// Sends `signal` to node `node` and waits until the process is gone.
    /// After SIGTERM the daemon must stop cleanly (exit 0) within 10 s.
    func kill(_ node: Int, signal: Int32 = SIGKILL) throws {
        guard let process = members[node].process, process.isRunning else {
            throw ClusterError("\(members[node].name) is not running, so it cannot be killed")
        }
        appendToLog(node, "==== harness: sending signal \(signal) at \(Self.timestamp()) ====")
        process.signal(signal)
        guard process.waitForExit(timeout: 10) else {
            process.signal(SIGKILL)
            process.waitForExit(timeout: 10)
            throw failure("\(members[node].name) did not exit within 10 s of signal \(signal)")
        }
        if signal == SIGTERM && !process.exitedCleanly {
            throw failure("\(members[node].name) \(process.exitDescription) after SIGTERM; a clean stop exits 0")
        }
        members[node].process = nil
    }

    /// Runs `body` with every running node stopped (SIGSTOP), then lets them
    /// all go on (SIGCONT), so the changes `body` makes on several nodes are
    /// concurrent for the cluster: each is on its node's disk before any
    /// node can announce, fetch or install anything. Without this, "at once"
    /// is only as tight as the test's thread is fast: on a loaded machine a
    /// node has been seen to fetch and install another's new file between
    /// two of the test's writes (36 ms apart), making the second write a
    /// plain edit instead of a conflict. The inotify events wait in the
    /// kernel meanwhile; the pause is a few milliseconds, far below Raft's
    /// election timeout.
    func whilePaused<T>(_ body: () throws -> T) throws -> T {
        let paused = members.compactMap { $0.isRunning ? $0.process : nil }
        for process in paused { process.signal(SIGSTOP) }
        defer { for process in paused { process.signal(SIGCONT) } }
        return try body()
    }

    /// Starts a daemon in node `node`'s place (its directory and ports) that
    /// presents itself as node `impersonated`, with that node's name and
    /// certificate: an operator's copy-paste slip. Stopped at shut-down.
    @discardableResult
    func startImpostor(of impersonated: Int, at node: Int) throws -> ClusterProcess {
        var arguments = arguments(node)
        for (flag, value) in [("--name", members[impersonated].name),
                              ("--cert", certificates.certificatePath(members[impersonated].name)),
                              ("--key", certificates.keyPath(members[impersonated].name))] {
            if let i = arguments.firstIndex(of: flag) { arguments[i + 1] = value }
        }
        appendToLog(node, "==== harness: starting an impostor of \(members[impersonated].name) at \(Self.timestamp()) ====")
        let process = try ClusterProcess(daemonExecutable, arguments, logPath: members[node].logPath, user: daemonUser)
        members[node].processes.append(process)
        return process
    }

    /// Starts node `node` again (same directory, ports and arguments), or
    /// for the first time if the cluster was made without it running.
    func restart(_ node: Int) throws {
        if members[node].isRunning { try kill(node, signal: SIGTERM) }
        try start(node)
    }

    /// Stops every process (SIGTERM, then SIGKILL after 5 s) and removes the
    /// directory unless NSYNC_E2E_KEEP is set. Idempotent.
    func shutDown() {
        guard !isShutDown else { return }
        isShutDown = true
        for member in members { for p in member.processes { p.signal(SIGTERM) } }
        for member in members { for p in member.processes { p.stop(grace: 5) } }
        if ProcessInfo.processInfo.environment["NSYNC_E2E_KEEP"] != nil {
            print("NSYNC_E2E_KEEP: leaving \(directory)")
        } else {
            try? FileManager.default.removeItem(atPath: directory)
        }
        if ownsCertificates { certificates.remove() }
    }

    // MARK: asking the nodes

    /// What node `node` reports over its control socket (`nsyncd status --json`).
    func status(_ node: Int, timeout: TimeInterval = 3) throws -> NodeStatus {
        try ControlClient.status(root: members[node].root, timeoutMilliseconds: UInt64(timeout * 1000))
    }

    /// Runs `nsyncd ARGS` (a client command, not a daemon) and returns its exit status and output.
    func runCommand(_ arguments: [String], timeout: TimeInterval) throws -> (status: Int32, output: String) {
        let outputPath = directory + "/command-\(UUID().uuidString.prefix(8)).out"
        defer { unlink(outputPath) }
        let process = try ClusterProcess(Self.executable, arguments, logPath: outputPath)
        if !process.waitForExit(timeout: timeout) {
            process.signal(SIGKILL)
            process.waitForExit(timeout: 5)
            throw ClusterError("nsyncd \(arguments.joined(separator: " ")) did not finish within \(timeout) s")
        }
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        let status = process.exitStatus ?? -1
        return (status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f), output)
    }

    // MARK: waiting

    /// Polls until every running node names the same running node as leader
    /// and that node says it leads; returns the leader's number.
    @discardableResult
    func waitForLeader(timeout: TimeInterval = 20) throws -> Int {
        var last = ""
        return try poll("a leader agreed by every running node", timeout: timeout, detail: { last }) {
            let running = members.indices.filter { members[$0].isRunning }
            var leaders = Set<String>()
            var roles: [String: String] = [:]
            for i in running {
                guard let status = try? status(i, timeout: 1) else {
                    last = "\(members[i].name) does not answer on its control socket yet"
                    return nil
                }
                leaders.insert(status.leader ?? "(none)")
                roles[status.name] = status.role
            }
            last = "leaders named: \(leaders.sorted()), roles: \(roles.sorted { $0.key < $1.key })"
            guard leaders.count == 1, let leader = leaders.first, roles[leader] == "leader",
                  let index = members.firstIndex(where: { $0.name == leader }) else { return nil }
            return index
        }
    }

    /// Polls until every running node's tree is identical (paths, kinds,
    /// modes, sizes, hashes, file mtimes, symlink targets) and `nsyncd wait`
    /// succeeds on each; returns the common tree.
    @discardableResult
    func waitUntilConverged(timeout: TimeInterval = 30) throws -> ClusterTree {
        let deadline = Date().addingTimeInterval(timeout)
        var last = ""
        return try poll("identical trees and `nsyncd wait` ok on every running node", timeout: timeout, detail: { last }) {
            let running = members.indices.filter { members[$0].isRunning }
            // Stats first: hashing a large tree every round would dominate the wait.
            guard let cheap = differenceReport(running, hashing: false) else { return nil }
            if !cheap.isEmpty {
                last = cheap
                return nil
            }
            guard let full = differenceReport(running, hashing: true) else { return nil }
            if !full.isEmpty {
                last = full
                return nil
            }
            for i in running {
                let remaining = max(1, deadline.timeIntervalSinceNow)
                let result = try runCommand(["wait", members[i].root, "--timeout", "\(Int(remaining * 1000))ms"],
                                            timeout: remaining + 10)
                if result.status != 0 {
                    last = "trees are identical but `nsyncd wait` on \(members[i].name) exited \(result.status):\n\(result.output)"
                    return nil
                }
            }
            // Settled everywhere: the trees must still agree (nothing was left to change them).
            guard let after = differenceReport(running, hashing: true) else { return nil }
            if !after.isEmpty {
                last = "`nsyncd wait` said synced, but:\n" + after
                return nil
            }
            return try tree(running[0])
        }
    }

    /// "" when the running nodes' trees agree, else what differs; nil when a
    /// tree could not be read (it is changing under the reader).
    private func differenceReport(_ running: [Int], hashing: Bool) -> String? {
        guard let first = running.first else { return "no node is running" }
        guard let reference = try? tree(first, hashing: hashing) else { return nil }
        var report = ""
        for i in running.dropFirst() {
            guard let other = try? tree(i, hashing: hashing) else { return nil }
            let lines = reference.differences(to: other, name: members[first].name, otherName: members[i].name)
            if !lines.isEmpty { report += "\(members[first].name) vs \(members[i].name):\n" + lines.joined(separator: "\n") + "\n" }
        }
        return report
    }

    /// A snapshot of node `node`'s synced directory.
    func tree(_ node: Int, hashing: Bool = true) throws -> ClusterTree {
        try ClusterTree.read(root: members[node].root, hashing: hashing, cache: members[node].hashes)
    }

    /// Polls `condition` every 20 ms until it returns a value or the deadline
    /// passes; fails early if a node that should run has exited.
    @discardableResult
    func poll<T>(_ what: String, timeout: TimeInterval, stopOnExit: Bool = true, detail: () -> String = { "" },
                 _ condition: () throws -> T?) throws -> T {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if stopOnExit, let dead = members.first(where: { $0.process != nil && !$0.isRunning }) {
                throw failure("\(dead.name) \(dead.process!.exitDescription) while waiting for \(what)")
            }
            if let value = try condition() { return value }
            if Date() >= deadline {
                throw failure("timed out after \(timeout) s waiting for \(what)\n\(detail())")
            }
            usleep(20_000)
        }
    }

    // MARK: diagnostics

    /// An error carrying `message` and every node's status (the log tails
    /// follow from `ClusterTestCase`'s teardown when the test failed).
    func failure(_ message: String) -> ClusterError {
        ClusterError(message + "\n" + diagnostics(logLines: 0))
    }

    /// Every node's status summary and log tail, for failure messages.
    func diagnostics(logLines: Int = 40) -> String {
        var text = ""
        for (i, member) in members.enumerated() {
            text += "---- \(member.name) (\(member.process.map { $0.isRunning ? "running, pid \($0.pid)" : $0.exitDescription } ?? "stopped"))"
            if member.isRunning, let s = try? status(i, timeout: 1) {
                text += ": \(s.role), term \(s.term), leader \(s.leader ?? "-"), commit \(s.commitIndex), applied \(s.appliedIndex)"
                text += ", files \(s.files), to fetch \(s.pendingFiles), not held \(s.notHeldFiles ?? 0), uncommitted \(s.pendingAnnouncements)"
                if !s.recentErrors.isEmpty { text += "\n  errors: \(s.recentErrors.suffix(5))" }
            }
            text += "\n" + (logLines > 0 ? logTail(i, lines: logLines) + "\n" : "")
        }
        return text
    }

    /// The last `lines` lines of node `node`'s log.
    func logTail(_ node: Int, lines: Int = 40) -> String {
        guard let text = try? String(contentsOfFile: members[node].logPath, encoding: .utf8) else { return "(no log)" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// Node `node`'s whole log.
    func log(_ node: Int) -> String {
        (try? String(contentsOfFile: members[node].logPath, encoding: .utf8)) ?? ""
    }

    private func appendToLog(_ node: Int, _ line: String) {
        guard let handle = FileHandle(forWritingAtPath: members[node].logPath) ?? {
            _ = FileManager.default.createFile(atPath: members[node].logPath, contents: nil)
            return FileHandle(forWritingAtPath: members[node].logPath)
        }() else { return }
        handle.seekToEndOfFile()
        handle.write(Data((line + "\n").utf8))
        handle.closeFile()
    }

    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return "\(now.tv_sec).\(String(format: "%03d", now.tv_nsec / 1_000_000))"
    }

    // MARK: ports

    /// How ports are chosen; the harness's own test replaces it to hand a
    /// daemon a port that is taken.
    nonisolated(unsafe) static var portPicker: (Int) throws -> [Int] = freePorts

    /// `count` distinct loopback ports that were free a moment ago (bound to
    /// port 0 and released). All are held until all are chosen, so they differ.
    static func freePorts(_ count: Int) throws -> [Int] {
        var sockets: [Int32] = []
        defer { for s in sockets { close(s) } }
        var ports: [Int] = []
        for _ in 0..<count {
            let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard s >= 0 else { throw ClusterError("socket: \(String(cString: strerror(errno)))") }
            sockets.append(s)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { throw ClusterError("bind 127.0.0.1:0: \(String(cString: strerror(errno)))") }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &length) }
            }
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        return ports
    }
}
