import Foundation
@testable import NsyncServer

/// A seeded cluster of reconcilers over fake disks and one shared committed
/// log, driven by a random scheduler: user operations on random nodes,
/// proposals that commit (or fail) after random delays so commands from
/// several nodes interleave, nodes that apply the log at their own pace, and
/// actions executed late against a disk the user may have changed since.
/// Test only; single-threaded.
///
/// What the simulated node does with each action (the contract the real node
/// must keep): an install (fetch, makeDirectory, makeSymlink, remove,
/// conflictCopy) first checks the disk still shows `expected`
/// (`reconcilerDiskMatches`) and reports `installFailed(.localChanged)`
/// (`conflictCopyFailed`) if not; every outcome reaches the reconciler as a
/// later event; a fetch copies the bytes from another node whose disk has
/// them at that path, else fails `.transient`; installs create missing
/// parent directories like `mkdir -p` (and the watcher then reports them);
/// removing a non-empty directory fails `.transient`; `retryLater` calls
/// `reconcile(path)` later; `observe` stats the path and calls `observed`.
///
/// The rest of the world: every node applies the one log in order, at its
/// own pace; a node's proposals commit in the order it sent them (one
/// leader), and each may be lost or, worse, commit although the node is told
/// it failed; a restart loses the reconciler's memory and every queued event
/// of that node (proposals already sent may still commit), keeps its saved
/// manifest and index, then scans (observes every path) and reconciles all;
/// node n1 plays the leader that proposes forgetting tombstones all hold.
struct ReconcilerSimulation {
    struct Options {
        var nodes = 3
        var userOperations = 60
        /// Nodes crash and restart with their saved manifest and a full scan.
        var restarts = true
        /// Proposals that time out although they commit (Raft cannot tell).
        var ambiguousFailures = true
        /// Names that are files on one node and directories on another.
        var kindChanges = false
    }

    struct Node {
        let name: NodeName
        var disk = ReconcilerFakeDisk()
        var index = FileIndex()
        var reconciler: Reconciler
        /// Log entries applied so far.
        var applied = 0
        /// Bumped by a restart: events of an earlier incarnation are dropped.
        var incarnation = 0
        var flushPending = false
        /// Paths a tracked file was renamed to, not yet looked at: what the
        /// node's watcher tells its reconciler (`observed(..., renamed:)`).
        var renamedTo = PathSet()
        /// Proposals sent and not yet decided, oldest first: one leader
        /// commits a node's proposals in the order they were sent.
        var outgoing: [Proposal] = []
    }

    struct Proposal {
        var changes: [IndexChange]
        var incarnation: Int
        /// False for the leader's forgets, which no reconciler waits for.
        var fromReconciler: Bool
    }

    enum Event {
        case observe(node: Int, path: String, incarnation: Int)
        case flush(node: Int, incarnation: Int)
        /// The node learns (late) that a proposal timed out; it may have committed all the same.
        case proposalFailed(node: Int, changes: [IndexChange], incarnation: Int)
        case action(node: Int, SyncAction, incarnation: Int)
        case retry(node: Int, path: String, incarnation: Int)
        case report(node: Int, Report, incarnation: Int)

        var node: Int {
            switch self {
            case let .observe(node, _, _), let .flush(node, _), let .proposalFailed(node, _, _),
                 let .action(node, _, _), let .retry(node, _, _), let .report(node, _, _): node
            }
        }
    }

    static let directories = ["d", "d/e", "f", "A\u{30A}"]
    /// "caf\u{E9}"/"cafe\u{301}" and "\u{C5}"/"A\u{30A}" differ only in Unicode
    /// normalization: distinct names on Linux, equal `String`s in Swift.
    static let leaves = ["a", "b.txt", "d/x", "d/y.txt", "d/e/z", "f/w", "caf\u{E9}", "cafe\u{301}", "\u{C5}/n", "A\u{30A}/n"]
    static let targets = ["a", "../t", "d/x"]

    let seed: UInt64
    let options: Options
    var random: WireTestRandom
    var nodes: [Node]
    var log: [IndexCommand] = []
    var pending: [Event] = []
    var clock: Int64 = 1_000
    var inodes: UInt64 = 0
    var nextContent: UInt64 = 0
    var steps = 0
    /// Every content a user wrote, and those a user then overwrote or removed on a disk that held it.
    var written: Set<UInt64> = []
    var superseded: Set<UInt64> = []
    var contentOfHash: [[UInt8]: UInt64] = [:]
    var hashOfContent: [UInt64: [UInt8]] = [:]
    var failures: [String] = []
    /// Conflict copies whose bytes the index had adopted by the time the copy was made.
    var lateIdenticalCopies = 0
    /// Shared by reference so that `note` need not mutate the simulation.
    final class Trace {
        var enabled = false
        var lines: [String] = []
    }
    let trace = Trace()
    // Tunables drawn per seed.
    let userWeight: Int
    /// How eagerly each node applies the log (a slow node lags far behind).
    let applyWeights: [Int]
    let directories: [String]
    let leaves: [String]
    let failPercent: Int
    let ambiguousPercent: Int

    init(seed: UInt64, options: Options = Options()) {
        self.seed = seed
        self.options = options
        random = WireTestRandom(seed: seed)
        nodes = (0..<options.nodes).map { Node(name: "n\($0 + 1)", reconciler: Reconciler(node: "n\($0 + 1)")) }
        userWeight = 1 + random.below(6)
        var weights: [Int] = []
        for _ in 0..<options.nodes { weights.append([1, 2, 4, 8][random.below(4)]) }
        applyWeights = weights
        if options.kindChanges {
            // Names that are a file on one node and a directory on another.
            directories = Self.directories + ["a", "b.txt/k"]
            leaves = Self.leaves + ["d/e", "b.txt", "a/q"]
        } else {
            directories = Self.directories
            leaves = Self.leaves
        }
        failPercent = random.below(8)
        ambiguousPercent = options.ambiguousFailures ? random.below(5) : 0
    }

    var names: [NodeName] { nodes.map(\.name) }

    /// Records a trace line, only when tracing: building the text of every
    /// event costs more than simulating it, and a failing seed is simply run
    /// again with tracing on (runs are deterministic).
    func note(_ text: @autoclosure () -> String) {
        guard trace.enabled else { return }
        var shown = text()
        if !shown.utf8.allSatisfy({ $0 < 0x80 }) {
            // Non-ASCII escaped, so names that differ only in normalization read differently.
            shown = shown.unicodeScalars.map { $0.isASCII ? String($0) : "\\u{\(String($0.value, radix: 16))}" }.joined()
        }
        trace.lines.append("\(steps) \(shown)")
        if Self.traceLive { print("\(steps) \(shown)") }
    }

    /// NSYNC_RECON_TRACE_LIVE: print trace lines as they happen (a seed that never ends).
    static let traceLive = ProcessInfo.processInfo.environment["NSYNC_RECON_TRACE_LIVE"] != nil

    mutating func fail(_ text: String) {
        failures.append(text)
    }

    // MARK: running

    /// The random phase, then quiescence; returns whether everything settled.
    mutating func run(maxQuiescenceSteps: Int = 20_000) -> Bool {
        var userDone = 0
        while userDone < options.userOperations {
            if random.below(10) < userWeight || !stepOnce() {
                userOperation()
                userDone += 1
            }
            if options.restarts && random.below(400) == 0 { restart(random.below(nodes.count)) }
            if random.below(50) == 0 { proposeForgets() }
            if random.below(40) == 0 {
                // A rescan (or a late watcher event) of any path.
                let n = random.below(nodes.count)
                let pool = leaves + directories + nodes[n].disk.paths
                pending.append(.observe(node: n, path: pool[random.below(pool.count)], incarnation: nodes[n].incarnation))
            }
        }
        note("--- quiescence")
        var budget = maxQuiescenceSteps
        while budget > 0 {
            budget -= 1
            if stepOnce() { continue }
            if proposeForgets() { continue }
            return true
        }
        return false
    }

    /// Runs one pending event, decides one node's oldest proposal, or applies
    /// one entry on a lagging node; false when there is nothing to do.
    mutating func stepOnce() -> Bool {
        var lagging: [Int] = []
        var proposing: [Int] = []
        for n in nodes.indices {
            if nodes[n].applied < log.count { lagging.append(n) }
            if !nodes[n].outgoing.isEmpty { proposing.append(n) }
        }
        let applying = lagging.reduce(0) { $0 + applyWeights[$1] }
        let total = pending.count + applying + proposing.count * 2
        guard total > 0 else { return false }
        steps += 1
        var pick = random.below(total)
        if pick < pending.count {
            pending.swapAt(pick, pending.count - 1)
            handle(pending.removeLast())
            return true
        }
        pick -= pending.count
        if pick < applying {
            for n in lagging {
                if pick < applyWeights[n] { apply(n); break }
                pick -= applyWeights[n]
            }
        } else {
            decide(proposing[(pick - applying) / 2])
        }
        return true
    }

    /// Node `n`'s oldest proposal commits, is lost, or commits although the
    /// node will hear that it timed out (Raft cannot tell the proposer).
    mutating func decide(_ n: Int) {
        let proposal = nodes[n].outgoing.removeFirst()
        let roll = random.below(100)
        let commits = roll >= failPercent || roll < ambiguousPercent
        let reportsFailure = roll < failPercent + ambiguousPercent
        if commits {
            log.append(IndexCommand(origin: nodes[n].name, changes: proposal.changes))
            note("\(nodes[n].name) commit #\(log.count) \(describe(proposal.changes))")
        } else {
            note("\(nodes[n].name) proposal lost: \(describe(proposal.changes))")
        }
        if reportsFailure && proposal.fromReconciler {
            pending.append(.proposalFailed(node: n, changes: proposal.changes, incarnation: proposal.incarnation))
        }
    }

    mutating func propose(_ n: Int, _ changes: [IndexChange], fromReconciler: Bool) {
        nodes[n].outgoing.append(Proposal(changes: changes, incarnation: nodes[n].incarnation, fromReconciler: fromReconciler))
    }

    mutating func handle(_ event: Event) {
        let n = event.node
        guard incarnationOf(event) == nodes[n].incarnation else { return }
        switch event {
        case let .observe(_, path, _):
            let local = nodes[n].disk[path]
            note("\(nodes[n].name) observe \(path) = \(describe(local))")
            let renamed = nodes[n].renamedTo.remove(path) != nil
            let actions = nodes[n].reconciler.observed(path, local, index: nodes[n].index, renamed: renamed)
            afterReconciler(n, actions)
        case .flush:
            nodes[n].flushPending = false
            let changes = nodes[n].reconciler.takeOutbox()
            if !changes.isEmpty { propose(n, changes, fromReconciler: true) }
        case let .action(_, action, _):
            execute(action, on: n)
        case let .retry(_, path, _):
            note("\(nodes[n].name) retry \(path)")
            let actions = nodes[n].reconciler.reconcile(path, index: nodes[n].index)
            afterReconciler(n, actions)
        case let .report(_, report, _):
            deliver(report, to: n)
        case let .proposalFailed(_, changes, _):
            note("\(nodes[n].name) hears its proposal timed out: \(describe(changes))")
            nodes[n].reconciler.proposalFailed(changes)
            afterReconciler(n, [])
        }
    }

    func incarnationOf(_ event: Event) -> Int {
        switch event {
        case let .observe(_, _, i), let .flush(_, i), let .proposalFailed(_, _, i), let .action(_, _, i), let .retry(_, _, i), let .report(_, _, i): i
        }
    }

    /// Queues what the reconciler asked for, and a flush of its outbox.
    mutating func afterReconciler(_ n: Int, _ actions: [SyncAction]) {
        let incarnation = nodes[n].incarnation
        for action in actions {
            note("\(nodes[n].name)   -> \(describe(action))")
            if case let .retryLater(path) = action {
                pending.append(.retry(node: n, path: path, incarnation: incarnation))
            } else {
                pending.append(.action(node: n, action, incarnation: incarnation))
            }
        }
        if nodes[n].reconciler.hasOutbox && !nodes[n].flushPending {
            nodes[n].flushPending = true
            pending.append(.flush(node: n, incarnation: incarnation))
        }
    }

    mutating func apply(_ n: Int) {
        let command = log[nodes[n].applied]
        nodes[n].applied += 1
        let entry = UInt64(nodes[n].applied)
        let outcomes = nodes[n].index.apply(command, at: entry)
        note("\(nodes[n].name) apply #\(entry) from \(command.origin): \(outcomes.map(describe).joined(separator: " "))")
        let actions = nodes[n].reconciler.applied(command, outcomes: outcomes, index: nodes[n].index)
        for case let .conflictCopy(path, expected) in actions {
            if let winner = nodes[n].index.record(at: path), winner.kind == .file, expected.kind == .file,
               expected.hash == winner.hash {
                fail("\(nodes[n].name) keeps a conflict copy of \(path) whose bytes equal the winner's (v\(winner.version))")
            }
        }
        afterReconciler(n, actions)
    }

    /// The leader (node 0) proposes forgetting tombstones every member holds.
    @discardableResult
    mutating func proposeForgets() -> Bool {
        let forgets = nodes[0].index.tombstonesHeldByAll(members: names)
        guard !forgets.isEmpty else { return false }
        propose(0, forgets.map { .forget(path: $0.path, version: $0.version) }, fromReconciler: false)
        return true
    }

    /// The node crashes (losing what the reconciler held in memory and every
    /// queued action; proposals already sent may still commit) and starts
    /// again from its saved manifest: a full scan, then `reconcileAll`.
    mutating func restart(_ n: Int) {
        note("\(nodes[n].name) RESTART")
        nodes[n].incarnation += 1
        nodes[n].flushPending = false
        pending.removeAll { $0.node == n }
        let manifest = nodes[n].reconciler.manifest
        nodes[n].reconciler = Reconciler(node: nodes[n].name, manifest: manifest)
        nodes[n].renamedTo = []
        var actions: [SyncAction] = []
        var scan = PathSet(nodes[n].disk.paths)
        for path in manifest.keys { scan.insert(path) }
        // As the node's scan does: a file under a name the manifest does not
        // know, with the inode of a file gone from its known name, was renamed.
        var vanished = Set<UInt64>()
        for (path, entry) in manifest where nodes[n].disk[path] == nil {
            if let local = entry.local, local.kind == .file { vanished.insert(local.inode) }
        }
        for path in ReconcilerFakeDisk.sortedByBytes(Array(scan)) {
            let local = nodes[n].disk[path]
            let renamed = local?.kind == .file && (manifest[path]?.local ?? nil) == nil && vanished.contains(local?.inode ?? 0)
            actions += nodes[n].reconciler.observed(path, local, index: nodes[n].index, renamed: renamed)
        }
        actions += nodes[n].reconciler.reconcileAll(index: nodes[n].index)
        afterReconciler(n, actions)
    }
}
