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

    static let directories = ["d", "d/e", "f"]
    static let leaves = ["a", "b.txt", "d/x", "d/y.txt", "d/e/z", "f/w", "caf\u{E9}"]
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
    var trace: [String] = []
    /// Keep every trace line (a replay of one seed), not only the last few hundred.
    var keepFullTrace = false
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

    mutating func note(_ text: String) {
        trace.append("\(steps) \(text)")
        if trace.count > 400 && !keepFullTrace { trace.removeFirst(100) }
    }

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
        let lagging = nodes.indices.filter { nodes[$0].applied < log.count }
        let proposing = nodes.indices.filter { !nodes[$0].outgoing.isEmpty }
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
            let actions = nodes[n].reconciler.observed(path, local, index: nodes[n].index)
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
        var actions: [SyncAction] = []
        for path in Set(nodes[n].disk.paths).union(manifest.keys).sorted() {
            actions += nodes[n].reconciler.observed(path, nodes[n].disk[path], index: nodes[n].index)
        }
        actions += nodes[n].reconciler.reconcileAll(index: nodes[n].index)
        afterReconciler(n, actions)
    }

    // MARK: user operations

    mutating func now() -> Int64 {
        clock += 1
        return clock
    }

    mutating func newInode() -> UInt64 {
        inodes += 1
        return inodes
    }

    mutating func watch(_ n: Int, _ paths: [String]) {
        for path in paths { pending.append(.observe(node: n, path: path, incarnation: nodes[n].incarnation)) }
    }

    /// The user on node `n` destroys whatever is at `path` (content they saw: superseded).
    mutating func supersede(_ n: Int, _ path: String) {
        if let old = nodes[n].disk[path], old.kind == .file, let id = contentOfHash[old.hash] { superseded.insert(id) }
    }

    mutating func newContent() -> UInt64 {
        nextContent += 1
        let hash = ReconcilerTestContent.hash(nextContent)
        contentOfHash[hash] = nextContent
        hashOfContent[nextContent] = hash
        return nextContent
    }

    mutating func userOperation() {
        let n = random.below(nodes.count)
        let leaf = leaves[random.below(leaves.count)]
        switch random.below(100) {
        case 0..<30:
            userWrite(n, leaf, content: newContent())
        case 30..<40:
            // Concurrent edits of one path on two nodes.
            let m = (n + 1 + random.below(nodes.count - 1)) % nodes.count
            userWrite(n, leaf, content: newContent())
            userWrite(m, leaf, content: newContent())
        case 40..<44:
            // The same bytes written on two nodes: must not conflict.
            let m = (n + 1 + random.below(nodes.count - 1)) % nodes.count
            let content = newContent()
            userWrite(n, leaf, content: content)
            userWrite(m, leaf, content: content)
        case 44..<58:
            let existing = nodes[n].disk.paths
            if existing.isEmpty { return }
            userDelete(n, existing[random.below(existing.count)])
        case 58..<64:
            userMakeDirectory(n, directories[random.below(directories.count)])
        case 64..<70:
            userSymlink(n, leaf, target: Self.targets[random.below(Self.targets.count)])
        case 70..<76:
            let existing = nodes[n].disk.paths
            if existing.isEmpty { return }
            userChmod(n, existing[random.below(existing.count)])
        case 76..<80:
            let files = nodes[n].disk.paths.filter { nodes[n].disk[$0]?.kind == .file }
            if files.isEmpty { return }
            userTouch(n, files[random.below(files.count)])
        case 80..<85:
            let files = nodes[n].disk.paths.filter { nodes[n].disk[$0]?.kind != .directory }
            if files.isEmpty { return }
            userRename(n, files[random.below(files.count)], to: leaf)
        case 85..<92:
            // Edit any existing file, conflict copies included.
            let files = nodes[n].disk.paths.filter { nodes[n].disk[$0]?.kind == .file }
            if files.isEmpty { return }
            userWrite(n, files[random.below(files.count)], content: newContent())
        default:
            // Re-create a name this node knows was deleted.
            let deleted = nodes[n].index.filter(\.isTombstone).map(\.path).filter { !directories.contains($0) }
            userWrite(n, deleted.isEmpty ? leaf : deleted[random.below(deleted.count)], content: newContent())
        }
    }

    mutating func userParents(_ n: Int, _ path: String) -> Bool {
        guard let created = nodes[n].disk.makeParents(of: path, clock: &clock, inodes: &inodes) else { return false }
        watch(n, created)
        return true
    }

    mutating func userWrite(_ n: Int, _ path: String, content: UInt64) {
        let old = nodes[n].disk[path]
        if old?.kind == .directory || !userParents(n, path) { return }
        supersede(n, path)
        let inPlace = old?.kind == .file && random.below(2) == 0
        let local = LocalFile(kind: .file, size: ReconcilerTestContent.size(content),
                              mode: old?.kind == .file ? old!.mode : 0o644, mtime: now(),
                              hash: hashOfContent[content]!, inode: inPlace ? old!.inode : newInode())
        nodes[n].disk.set(path, local, clock: clock)
        written.insert(content)
        note("\(nodes[n].name) USER write \(path) = #\(content)")
        watch(n, [path])
    }

    mutating func userDelete(_ n: Int, _ path: String) {
        guard let old = nodes[n].disk[path] else { return }
        var removed: [String] = []
        if old.kind == .directory { removed = nodes[n].disk.descendants(of: path) }
        removed.append(path)
        let time = now()
        for victim in removed {
            supersede(n, victim)
            nodes[n].disk.set(victim, nil, clock: time)
        }
        note("\(nodes[n].name) USER delete \(path) (\(removed.count))")
        watch(n, removed)
    }

    mutating func userMakeDirectory(_ n: Int, _ path: String) {
        if nodes[n].disk[path] != nil || !userParents(n, path) { return }
        nodes[n].disk.set(path, LocalFile(kind: .directory, mode: 0o755, mtime: now(), inode: newInode()), clock: clock)
        note("\(nodes[n].name) USER mkdir \(path)")
        watch(n, [path])
    }

    mutating func userSymlink(_ n: Int, _ path: String, target: String) {
        let old = nodes[n].disk[path]
        if old?.kind == .directory || !userParents(n, path) { return }
        supersede(n, path)
        nodes[n].disk.set(path, LocalFile(kind: .symlink, mode: 0o777, mtime: now(), target: target, inode: newInode()),
                          clock: clock)
        note("\(nodes[n].name) USER symlink \(path) -> \(target)")
        watch(n, [path])
    }

    mutating func userChmod(_ n: Int, _ path: String) {
        guard var local = nodes[n].disk[path], local.kind != .symlink else { return }
        switch local.mode {
        case 0o644: local.mode = 0o600
        case 0o600: local.mode = 0o644
        case 0o755: local.mode = 0o700
        default: local.mode = 0o755
        }
        nodes[n].disk.set(path, local, clock: now())
        note("\(nodes[n].name) USER chmod \(path) \(String(local.mode, radix: 8))")
        watch(n, [path])
    }

    mutating func userTouch(_ n: Int, _ path: String) {
        guard var local = nodes[n].disk[path] else { return }
        local.mtime = now()
        nodes[n].disk.set(path, local, clock: clock)
        note("\(nodes[n].name) USER touch \(path)")
        watch(n, [path])
    }

    mutating func userRename(_ n: Int, _ source: String, to destination: String) {
        guard source != destination, let local = nodes[n].disk[source], nodes[n].disk[destination] == nil,
              userParents(n, destination) else { return }
        let time = now()
        nodes[n].disk.set(source, nil, clock: time)
        nodes[n].disk.set(destination, local, clock: time)
        note("\(nodes[n].name) USER rename \(source) -> \(destination)")
        watch(n, [source, destination])
    }

    // MARK: executing actions

    /// What the node tells the reconciler once an action's disk work is
    /// done: delivered as its own later event, like a thread-pool completion
    /// reaching the loop (watcher events and log entries may come first).
    enum Report {
        case installed(path: String, version: UInt64, local: LocalFile?)
        case installFailed(path: String, version: UInt64, InstallFailure)
        case conflictCopied(path: String, copy: String, local: LocalFile)
        case conflictCopyFailed(path: String)
        case observed(path: String)
    }

    mutating func report(_ n: Int, _ report: Report) {
        pending.append(.report(node: n, report, incarnation: nodes[n].incarnation))
    }

    mutating func deliver(_ report: Report, to n: Int) {
        let index = nodes[n].index
        var actions: [SyncAction]
        switch report {
        case let .installed(path, version, local):
            note("\(nodes[n].name) installed \(path) v\(version) = \(describe(local))")
            actions = nodes[n].reconciler.installed(path, version: version, local: local, index: index)
        case let .installFailed(path, version, failure):
            note("\(nodes[n].name) install of \(path) v\(version) failed: \(failure)")
            actions = nodes[n].reconciler.installFailed(path, version: version, failure, index: index)
        case let .conflictCopied(path, copy, local):
            note("\(nodes[n].name) conflict copy of \(path) made: \(copy)")
            actions = nodes[n].reconciler.conflictCopied(path, to: copy, local: local, index: index)
        case let .conflictCopyFailed(path):
            note("\(nodes[n].name) conflict copy of \(path) not made: changed")
            actions = nodes[n].reconciler.conflictCopyFailed(path, index: index)
        case let .observed(path):
            let local = nodes[n].disk[path]
            note("\(nodes[n].name) observe \(path) = \(describe(local))")
            actions = nodes[n].reconciler.observed(path, local, index: index)
        }
        afterReconciler(n, actions)
    }

    /// Does an action's disk work now (checking `expected` first, as the real
    /// node does just before its rename) and reports the result later.
    mutating func execute(_ action: SyncAction, on n: Int) {
        let name = nodes[n].name
        let index = nodes[n].index
        let disk = nodes[n].disk[action.path]
        note("\(name) exec \(describe(action)) [disk \(describe(disk))]")
        switch action {
        case let .fetch(record, expected):
            guard reconcilerDiskMatches(disk, expected) else {
                return report(n, .installFailed(path: record.path, version: record.version, .localChanged))
            }
            let hasBytes = nodes.indices.contains { m in
                m != n && nodes[m].disk[record.path].map { $0.kind == .file && $0.hash == record.hash } == true
            }
            guard hasBytes, disk?.kind != .directory, makeParents(n, record.path) else {
                return report(n, .installFailed(path: record.path, version: record.version, .transient("no holder has the bytes")))
            }
            install(n, record.path, record.version, LocalFile(kind: .file, size: record.size, mode: record.mode,
                                                              mtime: record.mtime, hash: record.hash, inode: newInode()))
        case let .makeDirectory(record, expected):
            guard reconcilerDiskMatches(disk, expected) else {
                return report(n, .installFailed(path: record.path, version: record.version, .localChanged))
            }
            guard makeParents(n, record.path) else {
                return report(n, .installFailed(path: record.path, version: record.version, .transient("parent")))
            }
            var local = LocalFile(kind: .directory, mode: record.mode, mtime: now(), inode: newInode())
            if let disk, disk.kind == .directory {
                local.inode = disk.inode
                local.mtime = disk.mtime
            }
            install(n, record.path, record.version, local)
        case let .makeSymlink(record, expected):
            guard reconcilerDiskMatches(disk, expected) else {
                return report(n, .installFailed(path: record.path, version: record.version, .localChanged))
            }
            guard disk?.kind != .directory, makeParents(n, record.path) else {
                return report(n, .installFailed(path: record.path, version: record.version, .transient("parent")))
            }
            install(n, record.path, record.version,
                    LocalFile(kind: .symlink, mode: 0o777, mtime: record.mtime, target: record.target, inode: newInode()))
        case let .remove(path, version, expected):
            guard reconcilerDiskMatches(disk, expected) else {
                return report(n, .installFailed(path: path, version: version, .localChanged))
            }
            if disk?.kind == .directory && nodes[n].disk.hasChildren(path) {
                return report(n, .installFailed(path: path, version: version, .transient("directory not empty")))
            }
            install(n, path, version, nil)
        case let .conflictCopy(path, expected):
            guard let local = disk, reconcilerDiskMatches(local, expected) else { return report(n, .conflictCopyFailed(path: path)) }
            if let record = index.record(at: path), local.kind == .file, record.kind == .file, local.hash == record.hash {
                // The version that beat ours was different, but the index has
                // since moved to our bytes: a harmless race, counted.
                lateIdenticalCopies += 1
            }
            var copy = ConflictName.conflictCopyName(for: path, secondsSinceEpoch: now(), node: name)
            while nodes[n].disk[copy] != nil {
                copy = ConflictName.conflictCopyName(for: path, secondsSinceEpoch: now(), node: name)
            }
            nodes[n].disk.set(path, nil, clock: clock)
            nodes[n].disk.set(copy, local, clock: clock)
            note("\(name) renamed \(path) -> \(copy)")
            if random.below(2) == 0 { watch(n, [path, copy]) }
            report(n, .conflictCopied(path: path, copy: copy, local: local))
        case let .observe(path):
            deliver(.observed(path: path), to: n)
        case .retryLater:
            break
        }
    }

    /// Installs the reconciler's parents like `mkdir -p`; false when an ancestor is not a directory.
    mutating func makeParents(_ n: Int, _ path: String) -> Bool {
        guard let created = nodes[n].disk.makeParents(of: path, clock: &clock, inodes: &inodes) else { return false }
        watch(n, created)
        return true
    }

    mutating func install(_ n: Int, _ path: String, _ version: UInt64, _ local: LocalFile?) {
        nodes[n].disk.set(path, local, clock: now())
        // The watcher sees the node's own rename into place, sometimes after the user's next change.
        if random.below(2) == 0 { watch(n, [path]) }
        report(n, .installed(path: path, version: version, local: local))
    }

    // MARK: checks

    /// Convergence, holders, manifests, and no lost content; appends to `failures`.
    mutating func check() {
        let reference = nodes[0].index
        for node in nodes {
            if node.applied != log.count { fail("\(node.name) applied \(node.applied) of \(log.count) entries") }
            if node.index != reference { fail("\(node.name)'s index differs from \(nodes[0].name)'s") }
            var live: Set<String> = []
            for record in node.index {
                if record.isTombstone {
                    fail("tombstone \(record.path) v\(record.version) left, held by \(record.holders.sorted())")
                    continue
                }
                live.insert(record.path)
                if record.holders != Set(names) {
                    fail("\(record.path) v\(record.version) held by \(record.holders.sorted()) only")
                }
                guard let local = node.disk[record.path] else {
                    fail("\(node.name) lacks \(record.path) (\(describe(record)))")
                    continue
                }
                if !local.sameContent(as: record) {
                    fail("\(node.name) has \(record.path) = \(describe(local)); index: \(describe(record))")
                }
                let entry = node.reconciler.manifest[record.path]
                if entry?.version != record.version || !(entry?.local?.sameContent(as: record) ?? false) {
                    fail("\(node.name)'s manifest says \(record.path) = \(String(describing: entry)); index: v\(record.version)")
                }
            }
            for path in node.disk.paths where !live.contains(path) {
                fail("\(node.name) has \(path) = \(describe(node.disk[path])), which the index does not")
            }
            if node.reconciler.hasPendingWork { fail("\(node.name)'s reconciler still has pending work") }
        }
        for content in written.subtracting(superseded).sorted() {
            let hash = hashOfContent[content]!
            for node in nodes where !node.disk.paths.contains(where: { node.disk[$0]?.hash == hash }) {
                fail("content #\(content) (never overwritten or deleted by a user) is lost on \(node.name)")
            }
        }
    }

    // MARK: trace text

    func describe(_ local: LocalFile?) -> String {
        guard let local else { return "-" }
        switch local.kind {
        case .file: return "#\(contentOfHash[local.hash].map(String.init) ?? "?")/\(String(local.mode, radix: 8))@\(local.mtime)i\(local.inode)"
        case .directory: return "dir/\(String(local.mode, radix: 8))"
        case .symlink: return "->\(local.target)"
        case .deleted: return "deleted"
        }
    }

    func describe(_ record: FileRecord) -> String {
        let body: String
        switch record.kind {
        case .file: body = "#\(contentOfHash[record.hash].map(String.init) ?? "?")/\(String(record.mode, radix: 8))"
        case .directory: body = "dir/\(String(record.mode, radix: 8))"
        case .symlink: body = "->\(record.target)"
        case .deleted: body = "deleted"
        }
        return "v\(record.version) \(body) by \(record.origin) held \(record.holders.sorted().joined(separator: ","))"
    }

    func describe(_ outcome: ChangeOutcome) -> String {
        switch outcome {
        case let .accepted(version): "ok\(version)"
        case let .alreadyCurrent(version): "cur\(version)"
        case let .rejected(current): "REJ(v\(current.version))"
        case .stale: "stale"
        case let .invalid(reason): "INVALID(\(reason))"
        }
    }

    func describe(_ changes: [IndexChange]) -> String {
        changes.map { change in
            switch change {
            case let .put(put):
                let what: String
                switch put.kind {
                case .file: what = "#\(contentOfHash[put.hash].map(String.init) ?? "?")/\(String(put.mode, radix: 8))"
                case .directory: what = "dir/\(String(put.mode, radix: 8))"
                case .symlink: what = "->\(put.target)"
                case .deleted: what = "deleted"
                }
                return "put \(put.path)=\(what) base \(put.baseVersion)"
            case let .hold(path, version): return "hold \(path)@\(version)"
            case let .forget(path, version): return "forget \(path)@\(version)"
            }
        }.joined(separator: ", ")
    }

    func describe(_ action: SyncAction) -> String {
        switch action {
        case let .fetch(record, expected): "fetch \(record.path) \(describe(record)) expecting \(describe(expected))"
        case let .makeDirectory(record, expected): "mkdir \(record.path) v\(record.version) expecting \(describe(expected))"
        case let .makeSymlink(record, expected): "symlink \(record.path) v\(record.version) expecting \(describe(expected))"
        case let .remove(path, version, expected): "remove \(path) v\(version) expecting \(describe(expected))"
        case let .conflictCopy(path, expected): "conflictCopy \(path) expecting \(describe(expected))"
        case let .observe(path): "observe \(path)"
        case let .retryLater(path): "retryLater \(path)"
        }
    }
}

extension SyncAction {
    var path: String {
        switch self {
        case let .fetch(record, _), let .makeDirectory(record, _), let .makeSymlink(record, _): record.path
        case let .remove(path, _, _), let .conflictCopy(path, _), let .observe(path), let .retryLater(path): path
        }
    }
}
