import Foundation
import Logging

/// `nsyncd bench raft`: how fast a 3-node cluster commits small commands and
/// how long it is without a leader after the leader dies. Runs on the
/// calling thread (plus one thread per in-process node).
///
/// Throughput and latency: three `Node`s in this process, each on its own
/// EventLoop and thread, with real TLS on loopback sockets and real Raft
/// storage (fsync'd) in a scratch directory. A closed loop on the leader's
/// loop thread (`ProposalLoad`) keeps `window` commands outstanding and
/// batches what it issues in one loop turn into one entry; the driver's
/// group commit then puts many entries into one fsync. In-process, because
/// only there can the benchmark propose through the node's RaftDriver
/// without adding a proposal API to the daemon.
///
/// Failover: three real `nsyncd` daemons (child processes); each round kills
/// the leader with SIGKILL — a real crash, as the etcd figure we compare to
/// was measured with `kill -9`: the kernel closes its sockets and nothing
/// of ours runs on the way down — and times until a survivor reports
/// (control socket, polled every 2 ms) that it leads; then restarts the
/// dead one and waits until all three agree on a leader again. The cluster
/// is idle during failover rounds.
public enum RaftBenchmark {
    public struct Options: Sendable {
        /// Measured seconds of load (after `warmUpSeconds` unmeasured).
        public var seconds: Double = 10
        public var warmUpSeconds: Double = 1
        /// Commands outstanding at any time.
        public var window = 1_000
        /// Bytes per command (at least 8).
        public var commandBytes = 64
        /// Most commands one entry carries (keeps it far below the 1 MiB append limit).
        public var maxCommandsPerEntry = 4_096
        /// Leader kills; 0 skips the failover part.
        public var failoverRounds = 5
        /// Where the scratch directory goes (node state is fsync'd there).
        public var directory: String = FileManager.default.temporaryDirectory.path
        public init() {}
    }

    /// Figures of one run; MB/s and ms are decimal units.
    public struct Result: Codable, Sendable {
        /// Commands committed per second at the leader.
        public var commitsPerS: Double
        /// Command latency, issue to committed outcome.
        public var p50Ms: Double
        public var p99Ms: Double
        public var p999Ms: Double
        public var maxMs: Double
        /// Raft entries committed per second, and commands per entry.
        public var entriesPerS: Double
        public var commandsPerEntry: Double
        /// Entries made durable per log fsync: on the leader, and on the followers.
        public var entriesPerFsync: Double
        public var followerEntriesPerFsync: Double
        public var leaderFsyncsPerS: Double
        /// The leader's persistence jobs per second, counting those that only
        /// record a new commit index (written without fsync).
        public var leaderPersistBatchesPerS: Double
        /// Commands whose entry failed (no leader, leadership lost); they were issued again.
        public var failedCommands: Int
        public var seconds: Double
        public var window: Int
        public var commandBytes: Int
        /// Median over the rounds of kill -9 of the leader to a new leader; nil when no rounds ran.
        public var failoverMs: Double?
        public var failoverRoundsMs: [Double]
    }

    /// Runs both parts. `executable` is the nsyncd binary for the failover
    /// daemons; `certificateScript` is certs/gen-certs.sh.
    public static func run(_ options: Options, executable: String, certificateScript: String,
                           progress: (String) -> Void = { _ in }) throws -> Result {
        precondition(options.seconds > 0 && options.window > 0 && options.commandBytes >= 8)
        let scratch = try BenchSupport.makeScratchDirectory(under: options.directory)
        BenchCleanup.register(directory: scratch)
        defer {
            try? FileManager.default.removeItem(atPath: scratch)
            BenchCleanup.unregister(directory: scratch)
        }
        let certificates = scratch + "/certs"
        let names = ["n1", "n2", "n3"]
        try BenchSupport.generateCertificates(script: certificateScript, names: names, directory: certificates)

        progress("throughput: 3 in-process nodes, window \(options.window), \(options.commandBytes)-byte commands")
        var result = try measureThroughput(options, directory: scratch + "/inproc", certificates: certificates, names: names)
        if options.failoverRounds > 0 {
            progress("failover: 3 nsyncd daemons, \(options.failoverRounds) rounds of kill -9 of the leader")
            let rounds = try measureFailover(rounds: options.failoverRounds, executable: executable,
                                             directory: scratch + "/daemons", certificates: certificates,
                                             names: names, progress: progress)
            result.failoverRoundsMs = rounds
            result.failoverMs = BenchSupport.median(rounds)
        }
        return result
    }

    // MARK: throughput

    static func measureThroughput(_ options: Options, directory: String, certificates: String,
                                  names: [String]) throws -> Result {
        let ports = try BenchSupport.freePorts(2 * names.count)
        var logger = Logger(label: "nsyncd.bench") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .warning
        var nodes: [InProcessNode] = []
        defer { for node in nodes { node.stop() } }
        for (i, name) in names.enumerated() {
            let root = "\(directory)/\(name)"
            try FileDescriptor.makeDirectories(root)
            let peers = names.indices.filter { $0 != i }.map {
                PeerAddress(name: names[$0], host: "127.0.0.1", clusterPort: ports[2 * $0], filePort: ports[2 * $0 + 1])
            }
            let config = try NodeConfig(
                root: root, name: name, listenHost: "127.0.0.1", clusterPort: ports[2 * i], filePort: ports[2 * i + 1],
                peers: peers, caPath: "\(certificates)/ca.pem", certificatePath: "\(certificates)/\(name).pem",
                keyPath: "\(certificates)/\(name).key").validated()
            let node = InProcessNode(config: config, logger: logger)
            try node.start()
            nodes.append(node)
        }

        let leader = try waitForLeader(nodes)
        guard let load = leader.perform({ node, loop -> ProposalLoad? in
            guard let driver = node.driver else { return nil }
            let load = ProposalLoad(driver: driver, loop: loop, window: options.window, commandBytes: options.commandBytes,
                                    maxCommandsPerEntry: options.maxCommandsPerEntry)
            load.start()
            return load
        }) ?? nil else { throw BenchSupport.Failure("the leader \(leader.name) has no Raft driver") }

        BenchSupport.sleep(milliseconds: options.warmUpSeconds * 1000)
        let before = nodes.map { $0.persistence ?? .init() }
        _ = leader.perform { _, _ in load.beginRecording() }
        BenchSupport.sleep(milliseconds: options.seconds * 1000)
        guard let sample = leader.perform({ _, _ in load.endRecording() }) else {
            throw BenchSupport.Failure("the leader's node stopped during the measurement")
        }
        let after = nodes.map { $0.persistence ?? .init() }

        _ = leader.perform { _, _ in load.stop() }
        try BenchSupport.poll("the last proposals' outcomes", timeout: 30) {
            (leader.perform { _, _ in load.outstanding } ?? 0) == 0
        }
        // The load must go through Raft only: nodes skip its entries (Node.opaqueEntryMarker).
        for node in nodes {
            let (paths, errors) = node.perform { node, _ in (node.index.count, Array(node.recentErrors)) } ?? (0, [])
            guard paths == 0, errors.isEmpty else {
                throw BenchSupport.Failure("node \(node.name) has \(paths) paths in its index and these errors after the load: "
                    + errors.joined(separator: "; "))
            }
        }
        guard sample.committed > 0 else {
            let why = leader.perform { _, _ in load.lastFailure.map { "\($0)" } } ?? nil
            throw BenchSupport.Failure("nothing was committed in \(options.seconds) s" + (why.map { ": \($0)" } ?? ""))
        }

        let leaderIndex = nodes.firstIndex { $0 === leader }!
        let followerIndices = nodes.indices.filter { $0 != leaderIndex }
        func ratio(_ indices: [Int]) -> Double {
            let entries = indices.reduce(0) { $0 + after[$1].entries - before[$1].entries }
            let fsyncs = indices.reduce(0) { $0 + after[$1].logSyncs - before[$1].logSyncs }
            return fsyncs == 0 ? 0 : Double(entries) / Double(fsyncs)
        }
        let seconds = Double(sample.nanoseconds) / 1e9
        let latencies = sample.latencies
        return Result(
            commitsPerS: Double(sample.committed) / seconds,
            p50Ms: BenchSupport.milliseconds(latencies, percentile: 50),
            p99Ms: BenchSupport.milliseconds(latencies, percentile: 99),
            p999Ms: BenchSupport.milliseconds(latencies, percentile: 99.9),
            maxMs: Double(latencies.max) / 1000,
            entriesPerS: Double(sample.entries) / seconds,
            commandsPerEntry: Double(sample.committed) / Double(max(sample.entries, 1)),
            entriesPerFsync: ratio([leaderIndex]),
            followerEntriesPerFsync: ratio(followerIndices),
            leaderFsyncsPerS: Double(after[leaderIndex].logSyncs - before[leaderIndex].logSyncs) / seconds,
            leaderPersistBatchesPerS: Double(after[leaderIndex].batches - before[leaderIndex].batches) / seconds,
            failedCommands: sample.failed, seconds: seconds, window: options.window,
            commandBytes: options.commandBytes, failoverMs: nil, failoverRoundsMs: [])
    }

    /// Waits until one node leads and the others follow it.
    private static func waitForLeader(_ nodes: [InProcessNode]) throws -> InProcessNode {
        var leader: InProcessNode?
        try BenchSupport.poll("an elected leader among the in-process nodes", timeout: 30) {
            let statuses = nodes.map(\.raftStatus)
            guard let index = statuses.firstIndex(where: { $0?.role == .leader }) else { return false }
            let name = nodes[index].name
            guard statuses.allSatisfy({ $0?.leader == name }) else { return false }
            leader = nodes[index]
            return true
        }
        return leader!
    }

    // MARK: failover

    static func measureFailover(rounds: Int, executable: String, directory: String, certificates: String,
                                names: [String], progress: (String) -> Void) throws -> [Double] {
        let cluster = try DaemonCluster(executable: executable, directory: directory,
                                        certificateDirectory: certificates, names: names)
        defer { cluster.stopAll() }
        try cluster.startAll()
        var leader = try cluster.waitUntilFormed()
        var results: [Double] = []
        for round in 1...rounds {
            // Let the followers hear a few heartbeats from this leader first,
            // as they would in a cluster that has been up a while.
            BenchSupport.sleep(milliseconds: 500)
            let survivors = (0..<cluster.count).filter { $0 != leader }
            let killed = BenchSupport.now()
            cluster.kill(leader)
            var elected: Int?
            try BenchSupport.poll("a new leader after killing \(cluster.members[leader].name)", timeout: 30, interval: 2) {
                try cluster.checkAlive(survivors)
                elected = survivors.first { cluster.status($0, timeoutMilliseconds: 500)?.role == "leader" }
                return elected != nil
            }
            let milliseconds = Double(BenchSupport.now() - killed) / 1e6
            results.append(milliseconds)
            progress("  round \(round): killed \(cluster.members[leader].name), \(cluster.members[elected!].name) leads after "
                + String(format: "%.0f ms", milliseconds))
            try cluster.start(leader)
            leader = try cluster.waitUntilFormed()
        }
        return results
    }
}
