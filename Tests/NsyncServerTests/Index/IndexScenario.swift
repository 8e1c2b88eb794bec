@testable import NsyncServer

/// Random but replayable index workloads for the determinism, codec and
/// snapshot tests: a few nodes editing, deleting, holding and forgetting a
/// small pool of paths, with bases that are sometimes current, sometimes stale.
struct IndexScenario {
    static let nodes: [NodeName] = ["n1", "n2", "node-3"]

    var random: WireTestRandom
    let paths: [String]
    let includeInvalid: Bool

    init(seed: UInt64, pathCount: Int = 60, includeInvalid: Bool = false) {
        random = WireTestRandom(seed: seed)
        var pool: [String] = []
        let names = ["a", "b.txt", "caf\u{E9}", "cafe\u{301}", "日本", "with space", "x-y", "Z", ".hidden"]
        for i in 0..<pathCount {
            let name = names[i % names.count] + (i < names.count ? "" : "\(i)")
            pool.append(i % 3 == 0 ? name : "dir\(i % 5)/" + name)
        }
        paths = pool
        self.includeInvalid = includeInvalid
    }

    mutating func hash() -> [UInt8] {
        // Few distinct hashes, so identical-content cases happen often.
        [UInt8](repeating: UInt8(random.below(4)), count: 32)
    }

    /// A base the proposer might have: mostly the current version, else stale.
    mutating func base(for path: String, in view: FileIndex) -> UInt64 {
        let current = view.record(at: path)?.version ?? 0
        switch random.below(6) {
        case 0: return 0
        case 1: return current > 0 ? UInt64(random.below(Int(current))) : 0
        default: return current
        }
    }

    mutating func change(in view: FileIndex) -> IndexChange {
        var path = paths[random.below(paths.count)]
        if includeInvalid && random.below(400) == 0 { path = ["../up", "/abs", ".nsync/x", "a//b", ""][random.below(5)] }
        let base = base(for: path, in: view)
        let mtime = Int64(random.below(3))
        switch random.below(10) {
        case 0, 1, 2:
            return .put(.file(path, size: UInt64(random.below(3)), mode: [0o644, 0o600][random.below(2)],
                              mtime: mtime, hash: hash(), base: base))
        case 3:
            return .put(.directory(path, mode: [0o755, 0o700][random.below(2)], mtime: mtime, base: base))
        case 4:
            return .put(.symlink(path, target: ["t", "../t", "caf\u{E9}"][random.below(3)], mtime: mtime, base: base))
        case 5, 6:
            return .put(.deletion(path, mtime: mtime, base: base))
        case 7, 8:
            return .hold(path: path, version: base)
        default:
            return .forget(path: path, version: base)
        }
    }

    mutating func command(in view: FileIndex, maxChanges: Int = 40) -> IndexCommand {
        let origin = Self.nodes[random.below(Self.nodes.count)]
        let count = 1 + random.below(maxChanges)
        return IndexCommand(origin: origin, changes: (0..<count).map { _ in change(in: view) })
    }

    /// An index after `commands` random commands (entries 1...commands).
    static func index(seed: UInt64, commands: Int, pathCount: Int = 60) -> FileIndex {
        var scenario = IndexScenario(seed: seed, pathCount: pathCount)
        var index = FileIndex()
        for entry in 1...UInt64(commands) {
            _ = index.apply(scenario.command(in: index), at: entry)
        }
        return index
    }
}
