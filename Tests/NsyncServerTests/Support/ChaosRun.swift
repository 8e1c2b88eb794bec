import Foundation
@testable import NsyncServer

/// One seeded chaos run against a `TestCluster` whose nodes reach one another
/// through a `PartitionProxy`: round after round a random change on a random
/// node's disk (write, append, truncate, delete, mkdir, rm -rf, rename,
/// symlink, chmod, touch, a few MiB, several nodes at once) or to the
/// cluster (kill -9 and a later restart, SIGTERM and restart, a cut and a
/// later heal), with a short random pause after each. It keeps a
/// `ChaosModel` of every content written and what the test saw happen to
/// it. The test's thread.
///
/// Each round draws from its own generator, seeded from the run's seed and
/// the round number, so a replay (NSYNC_CHAOS_SEED) makes the same choices
/// round by round even where the daemons' timing makes one round find its
/// disk differently (and skip a change the first run made).
final class ChaosRun {
    struct Settings {
        var seed: UInt64
        var rounds: Int
        /// Seconds the rounds may take in all; later rounds are skipped.
        var budget: TimeInterval
        /// Contents written or moved on a node this long before its kill -9 need not survive (`ChaosModel.killed`).
        var killWindow: TimeInterval = 0.5
        /// The longest pause after a round, in milliseconds.
        var maxPause: UInt64 = 150
    }

    /// What a round does.
    enum Action: String, CaseIterable {
        case write, append, truncate, delete, makeDirectory, removeDirectory, renameFile, renameDirectory
        case symlink, chmod, touch, large, patch, atOnce, kill, terminate, cut
    }

    /// Out of 1000. Node actions are refused when they would leave no
    /// majority (see `perform`); the round then writes instead.
    static let weights: [(Action, UInt64)] = [
        (.write, 265), (.append, 70), (.truncate, 25), (.delete, 70), (.makeDirectory, 60), (.removeDirectory, 35),
        (.renameFile, 60), (.renameDirectory, 35), (.symlink, 40), (.chmod, 45), (.touch, 45), (.large, 15), (.patch, 25),
        (.atOnce, 90), (.kill, 45), (.terminate, 30), (.cut, 45),
    ]

    /// A few names, so nodes collide on them. "mixed" is a file on some
    /// rounds and a directory on others (a kind clash when nodes disagree).
    static let files = ["f0.txt", "f1.txt", "f2.txt", "notes", "d0/g0.txt", "d0/g1.md", "d1/g0.txt", "d0/deep/h.txt",
                        "mixed", "mixed/y.txt", "moved/g0.txt"]
    static let directories = ["d0", "d1", "d2", "d0/deep", "mixed", "moved"]
    static let links = ["link0", "link1", "d1/link"]
    static let largeFiles = ["big.bin", "d1/big.bin"]
    static let fileModes: [mode_t] = [0o644, 0o600, 0o640, 0o664, 0o755]
    static let directoryModes: [mode_t] = [0o755, 0o750, 0o700, 0o775]

    let cluster: TestCluster
    let proxy: PartitionProxy
    let settings: Settings
    /// Every content written; the change functions (ChaosRun+Changes.swift) update it.
    var model = ChaosModel()
    /// One line per change made, for the failure message.
    private(set) var events: [String] = []
    /// How often each action ran (and was skipped, as "action skipped").
    private(set) var counts: [String: Int] = [:]
    private(set) var roundsRun = 0
    /// The node killed -9 and the round it comes back in.
    private var down: (node: Int, restartAt: Int)?
    /// The node cut off and the round it is healed in.
    private var isolated: (node: Int, healAt: Int)?
    private(set) var round = 0
    /// This round's generator (see the type's comment).
    var random = ClusterRandom(seed: 0)

    init(cluster: TestCluster, proxy: PartitionProxy, settings: Settings) {
        self.cluster = cluster
        self.proxy = proxy
        self.settings = settings
    }

    // MARK: rounds

    /// Runs the rounds (bounded by count and by `settings.budget`).
    func run() throws {
        let started = Date()
        for r in 1...max(1, settings.rounds) {
            if Date().timeIntervalSince(started) > settings.budget {
                note("time budget of \(Int(settings.budget)) s spent after \(r - 1) rounds")
                break
            }
            round = r
            random = ClusterRandom(seed: settings.seed &+ UInt64(r) &* 0xD1B5_4A32_D192_ED03)
            try checkAlive()
            try applySchedule()
            let node = Int(random.next() % UInt64(cluster.count))
            try perform(pick(), on: node)
            roundsRun = r
            usleep(UInt32(random.next() % (settings.maxPause + 1)) * 1000)
        }
        try checkAlive()
    }

    /// Heals the network, restarts every node (started again if down,
    /// SIGTERM and start otherwise) and waits for one tree everywhere.
    func finish(timeout: TimeInterval) throws -> ClusterTree {
        if isolated != nil {
            try proxy.heal()
            note("final: healed node\(isolated!.node + 1)")
            isolated = nil
        }
        for node in 0..<cluster.count { try restart(node) }
        down = nil
        note("final: restarted every node")
        try cluster.waitForLeader(timeout: 30)
        return try cluster.waitUntilConverged(timeout: timeout)
    }

    /// SIGTERM (if it runs) and start, then wait until it answers on its
    /// control socket: it has installed its SIGTERM handler by then (a
    /// SIGTERM a millisecond after exec would find the default action and
    /// kill it, which says nothing about the daemon).
    private func restart(_ node: Int) throws {
        try cluster.restart(node)
        _ = try cluster.poll("\(cluster.names[node]) to answer on its control socket after a restart", timeout: 15) {
            (try? cluster.status(node, timeout: 1)) != nil ? true : nil
        }
    }

    private func pick() -> Action {
        var roll = random.next() % Self.weights.reduce(0) { $0 + $1.1 }
        for (action, weight) in Self.weights {
            if roll < weight { return action }
            roll -= weight
        }
        return .write
    }

    /// A daemon that exits by itself during the run has crashed: fail with why.
    private func checkAlive() throws {
        for (i, member) in cluster.members.enumerated() where member.process != nil && !member.isRunning {
            throw cluster.failure("round \(round): \(member.name) \(member.process!.exitDescription) by itself; "
                                  + "last changes:\n" + events.suffix(15).joined(separator: "\n") + "\n\(cluster.logTail(i, lines: 30))")
        }
    }

    /// Brings back the node that is down, and heals the cut one, when their round has come.
    private func applySchedule() throws {
        if let down, round >= down.restartAt {
            try restart(down.node)
            self.down = nil
            note("node\(down.node + 1) restarted")
        }
        if let isolated, round >= isolated.healAt {
            try proxy.heal()
            self.isolated = nil
            note("node\(isolated.node + 1) healed")
        }
    }

    private func perform(_ action: Action, on node: Int) throws {
        var done = true
        switch action {
        case .kill, .terminate, .cut:
            done = try performOnCluster(action, node)
            // Refused (it would leave no majority): a write instead, so the round still changes something.
            if !done {
                counts["\(action.rawValue) refused", default: 0] += 1
                return try perform(.write, on: node)
            }
        case .atOnce:
            done = try atOnce()
        default:
            done = try paused([node]) { try change(action, node) }
        }
        counts[action.rawValue + (done ? "" : " skipped"), default: 0] += 1
    }

    /// kill -9, SIGTERM + restart, or a cut. At most one node is impaired
    /// (down or cut) at a time, so two always form a majority; the cut node
    /// may be killed, and a down node is never cut.
    private func performOnCluster(_ action: Action, _ node: Int) throws -> Bool {
        guard cluster.members[node].isRunning, down == nil, isolated == nil || isolated?.node == node else { return false }
        switch action {
        case .kill:
            try cluster.kill(node, signal: SIGKILL)
            let at = Date()
            model.killed(node, round: round, at: at, window: settings.killWindow)
            down = (node, round + 5 + Int(random.next() % 36))
            note("node\(node + 1) killed -9 (back in round \(down!.restartAt))")
        case .terminate:
            try restart(node)
            note("node\(node + 1) stopped with SIGTERM and started again")
        case .cut:
            guard isolated == nil else { return false }
            try proxy.cut(node)
            isolated = (node, round + 10 + Int(random.next() % 71))
            note("node\(node + 1) cut off (healed in round \(isolated!.healAt))")
        default:
            return false
        }
        return true
    }

    /// One change to `node`'s disk, its daemon stopped meanwhile (by the caller). False: not possible now.
    private func change(_ action: Action, _ node: Int) throws -> Bool {
        switch action {
        case .write: return try write(node, pick(Self.files))
        // Changes to what exists pick among the names that exist there now.
        case .append: return try append(node, pickPresent(node, Self.files, [.file]) ?? Self.files[0])
        case .truncate: return try truncate(node, pickPresent(node, Self.files + Self.largeFiles, [.file]) ?? Self.files[0])
        case .delete:
            return try delete(node, pickPresent(node, Self.files + Self.links + Self.largeFiles, [.file, .symlink]) ?? Self.files[0])
        case .makeDirectory: return try makeDirectory(node, pick(Self.directories))
        case .removeDirectory: return try delete(node, pickPresent(node, Self.directories, [.directory]) ?? Self.directories[0])
        case .renameFile: return try renameFile(node)
        case .renameDirectory: return try renameDirectory(node)
        case .symlink: return try symlink(node, pick(Self.links))
        case .chmod: return try chmod(node, pickPresent(node, Self.files + Self.directories, [.file, .directory]) ?? Self.files[0])
        case .touch: return try touch(node, pickPresent(node, Self.files + Self.largeFiles, [.file]) ?? Self.files[0])
        case .large: return try writeLarge(node, pick(Self.largeFiles))
        case .patch: return try patch(node, pickPresent(node, Self.largeFiles + Self.files, [.file]) ?? Self.largeFiles[0])
        default: return false
        }
    }

    /// Two or three nodes change one name while every daemon is stopped, so
    /// the changes are concurrent for the cluster (as in `whilePaused`).
    private func atOnce() throws -> Bool {
        var nodes = Array(0..<cluster.count)
        nodes.shuffle(using: &random)
        let name = pick(Self.files)
        return try paused(Array(0..<cluster.count)) {
            switch random.next() % 4 {
            case 0:
                note("at once: \(name) written on several nodes")
                var any = false
                for node in nodes.prefix(2 + Int(random.next() % 2)) { any = try write(node, name) || any }
                return any
            case 1:
                note("at once: \(name) written on one node, deleted on another")
                let wrote = try write(nodes[0], name)
                return try delete(nodes[1], name) || wrote
            case 2:
                note("at once: mixed made a file on one node, a directory on another")
                let wrote = try write(nodes[0], "mixed")
                return try write(nodes[1], "mixed/y.txt") || wrote
            default:
                let other = pick(Self.files.filter { $0 != name })
                note("at once: \(name) renamed to \(other) on one node, \(name) written on another")
                let renamed = try renameFile(nodes[0], from: name, to: other)
                return try write(nodes[1], name) || renamed
            }
        }
    }

    // MARK: stopping daemons

    /// Runs `body` with the daemons of `nodes` stopped (SIGSTOP; those that
    /// run), so the test's look at a path and its change to it are one step
    /// for the daemon: no install can land between them (one that did would
    /// be replaced unseen, and the model would count the wrong content as
    /// overwritten). A node that is down needs nothing.
    private func paused<T>(_ nodes: [Int], _ body: () throws -> T) throws -> T {
        let processes = nodes.compactMap { cluster.members[$0].isRunning ? cluster.members[$0].process : nil }
        for process in processes { process.signal(SIGSTOP) }
        defer { for process in processes { process.signal(SIGCONT) } }
        for process in processes { try waitUntilStopped(process.pid) }
        return try body()
    }

    /// kill(2) returns before a thread running on another CPU has stopped:
    /// poll /proc until every thread of `pid` shows T (stopped) or is gone.
    private func waitUntilStopped(_ pid: pid_t) throws {
        let deadline = Date().addingTimeInterval(2)
        while true {
            let tasks = (try? ClusterTree.listDirectory("/proc/\(pid)/task")) ?? []
            let running = tasks.filter { task in
                guard let stat = Self.readSmallFile("/proc/\(pid)/task/\(task)/stat"),
                      let close = stat.lastIndex(of: ")") else { return false }
                let state = stat[stat.index(after: close)...].drop { $0 == " " }.first
                return !(state == "T" || state == "t" || state == "Z" || state == "X")
            }
            if running.isEmpty { return }
            if Date() >= deadline { throw ClusterError("pid \(pid) did not stop within 2 s of SIGSTOP (threads \(running))") }
            usleep(200)
        }
    }

    private static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
    }

    /// One line for the failure message, prefixed with the round.
    func note(_ line: String) {
        events.append("r\(round) \(line)")
    }
}
