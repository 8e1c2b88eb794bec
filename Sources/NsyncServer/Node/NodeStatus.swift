import Foundation

/// A snapshot of what a node is doing, for `nsyncd status` (human or JSON).
/// Built on the loop thread, encoded and read anywhere.
public struct NodeStatus: Codable, Equatable, Sendable {
    public var name: String
    public var role: String
    public var term: UInt64
    /// The leader's node name, nil when none is known.
    public var leader: String?
    public var commitIndex: UInt64
    public var appliedIndex: UInt64
    public var snapshotIndex: UInt64
    public var files: Int
    public var peers: [Peer]
    public var transfers: [Transfer]
    /// Files being sent to peers now (optional: older daemons lack it).
    public var sending: [Sending]?
    /// Files and bytes this node still has to fetch.
    public var pendingFiles: Int
    public var pendingBytes: UInt64
    /// Local changes not yet committed.
    public var pendingAnnouncements: Int
    /// Versions in the index (files, directories, links) this node does
    /// not hold yet, and their bytes: more than `pendingFiles` while
    /// fetches wait for looks at their paths or for a holder. Optional,
    /// as below.
    public var notHeldFiles: Int? = nil
    public var notHeldBytes: UInt64? = nil
    /// Files this node cannot fetch now (oldest first, at most
    /// `unavailableListLimit` listed), and how many there are in all.
    /// Optional so that a newer `nsyncd status` still reads an older daemon.
    public var unavailable: [Unavailable]?
    public var unavailableFiles: Int?
    /// File bytes this node sent to peers (served or relayed) and received
    /// from them since it started. Optional, as above.
    public var bytesSent: UInt64?
    public var bytesReceived: UInt64?
    /// File bytes of new versions this node did not need to receive: it
    /// held them (an append's start, the unchanged blocks of a file edited
    /// in place) and copied them from its own file. Optional, as above.
    public var bytesReused: UInt64? = nil
    /// File bytes that came as `.zeros` (a sparse file's holes), not as
    /// bytes: not in `bytesReceived`. Optional, as above.
    public var bytesZeros: UInt64? = nil
    public var scan: Scan?
    public var recentConflicts: [String]
    public var recentErrors: [String]
    public var uptimeSeconds: Double
    /// Directories deleted on another node and kept here because all they
    /// hold is what this node does not sync (ignored or special files):
    /// the first `unavailableListLimit` by path, and how many in all.
    /// Optional, as above.
    public var keptDirectories: [String]? = nil
    public var keptDirectoryCount: Int? = nil
    /// What is here and does not sync (FIFOs, sockets, device nodes, names
    /// that are not UTF-8, unreadable directories): the first
    /// `unavailableListLimit` by path, with why, and how many in all
    /// (`notSyncedCountIsLowerBound`: at least that many). Optional, as above.
    public var notSynced: [String]? = nil
    public var notSyncedCount: Int? = nil
    public var notSyncedCountIsLowerBound: Bool? = nil
    /// The disk the synced directory is on. Optional, as above.
    public var disk: Disk? = nil

    /// Room on the synced directory's file system: what an unprivileged
    /// writer may still use, the size, and what downloads leave free for the
    /// Raft log (a write that would go below it is refused, as by a full disk).
    public struct Disk: Codable, Equatable, Sendable {
        public var freeBytes: UInt64
        public var totalBytes: UInt64
        public var keptFreeBytes: UInt64
    }

    /// One other member as this node sees it.
    public struct Peer: Codable, Equatable, Sendable {
        public var name: String
        public var address: String
        public var connected: Bool
        /// The leader's view of its log position (0 unless this node leads).
        public var matchIndex: UInt64
        /// Raft entries it lacks (leader's view), if known.
        public var behindEntries: UInt64?
        /// Files whose current version it does not hold yet, and their bytes.
        public var filesBehind: Int
        public var bytesBehind: UInt64
    }

    /// A file being fetched.
    public struct Transfer: Codable, Equatable, Sendable {
        public var path: String
        public var from: String
        public var bytesDone: UInt64
        public var bytesTotal: UInt64
        public var bytesPerSecond: Double
        /// Set while this node reads before it asks a holder (the version
        /// it holds, hashed or copied, or a `.part` to resume); `from` is
        /// then this node. Optional: older daemons lack it.
        public var stage: String? = nil
    }

    /// A file being sent to a peer; `relayed` when this node is still
    /// receiving it and passes it on as it arrives.
    public struct Sending: Codable, Equatable, Sendable {
        public var path: String
        public var to: String
        public var bytesDone: UInt64
        public var bytesTotal: UInt64
        public var relayed: Bool
    }

    /// A version this node lacks and cannot fetch now: it is connected to
    /// none of its holders, or the last attempt failed.
    public struct Unavailable: Codable, Equatable, Sendable {
        public var path: String
        public var version: UInt64
        public var holders: [String]
        public var reason: String
        /// For how long (s).
        public var seconds: Double
    }

    public static let unavailableListLimit = 20

    /// The start-up (or overflow) scan while it runs.
    public struct Scan: Codable, Equatable, Sendable {
        public var filesDone: Int
        public var filesTotal: Int
        public var bytesHashed: UInt64
    }

    public func jsonData() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(self)) ?? Data("{}".utf8)
    }

    public static func decode(_ data: Data) throws -> NodeStatus {
        try JSONDecoder().decode(NodeStatus.self, from: data)
    }

    /// The human view: who leads, who is behind, what moves.
    public func rendered() -> String {
        var out = "node \(name): \(role), term \(term), leader \(leader ?? "(none)")\n"
        out += "log: commit \(commitIndex), applied \(appliedIndex), snapshot \(snapshotIndex); index \(files) paths\n"
        if let scan {
            out += "scanning: \(scan.filesDone)/\(scan.filesTotal) files, \(Self.bytes(scan.bytesHashed)) hashed\n"
        }
        out += "to fetch: \(pendingFiles) files (\(Self.bytes(pendingBytes)))"
        if let notHeld = notHeldFiles, notHeld > pendingFiles {
            out += ", not held here yet: \(notHeld) versions (\(Self.bytes(notHeldBytes ?? 0)))"
        }
        out += "; local changes not yet committed: \(pendingAnnouncements)\n"
        if let count = unavailableFiles, count > 0 {
            let listed = unavailable ?? []
            out += "cannot fetch now: \(count) files (they arrive once a node holding them is reachable)\n"
            for u in listed {
                out += "  \(u.path) (version \(u.version)): \(u.reason), for \(String(format: "%.0f", u.seconds)) s\n"
            }
            if count > listed.count { out += "  ... and \(count - listed.count) more\n" }
        }
        if let sent = bytesSent, let received = bytesReceived {
            out += "file data since start: sent \(Self.bytes(sent)), received \(Self.bytes(received))"
            if let reused = bytesReused, reused > 0 { out += ", \(Self.bytes(reused)) more copied from versions held here" }
            if let zeros = bytesZeros, zeros > 0 { out += ", \(Self.bytes(zeros)) more of zeros (holes)" }
            out += "\n"
        }
        if let disk {
            out += "disk: \(Self.bytes(disk.freeBytes)) free of \(Self.bytes(disk.totalBytes))"
            out += disk.freeBytes <= disk.keptFreeBytes
                ? ", FULL for downloads: \(Self.bytes(disk.keptFreeBytes)) is kept free for the raft log\n"
                : " (downloads stop at \(Self.bytes(disk.keptFreeBytes)) free, kept for the raft log)\n"
        }
        out += "members:\n"
        for p in peers {
            var line = "  \(p.name.padding(toLength: 12, withPad: " ", startingAt: 0)) \(p.connected ? "connected   " : "DISCONNECTED") \(p.address)"
            if let behind = p.behindEntries { line += ", \(behind) entries behind (match \(p.matchIndex))" }
            if p.filesBehind > 0 { line += ", \(p.filesBehind) files / \(Self.bytes(p.bytesBehind)) to fetch" }
            out += line + "\n"
        }
        if !transfers.isEmpty {
            out += "transfers:\n"
            for t in transfers {
                let fraction = t.bytesTotal == 0 ? 1 : Double(t.bytesDone) / Double(t.bytesTotal)
                let width = 20
                let filled = min(width, Int(fraction * Double(width)))
                let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
                var eta = ""
                if t.bytesPerSecond > 0 {
                    eta = String(format: ", ETA %.0fs", Double(t.bytesTotal - min(t.bytesDone, t.bytesTotal)) / t.bytesPerSecond)
                }
                let source = t.stage.map { ": \($0)" } ?? " from \(t.from)"
                out += "  [\(bar)] \(String(format: "%3.0f%%", fraction * 100)) \(t.path)\(source), \(Self.bytes(UInt64(t.bytesPerSecond)))/s\(eta)\n"
            }
        }
        if let sending, !sending.isEmpty {
            out += "sending:\n"
            for t in sending {
                let percent = t.bytesTotal == 0 ? 100 : Double(t.bytesDone) * 100 / Double(t.bytesTotal)
                out += "  \(t.path) to \(t.to): \(String(format: "%.0f%%", percent)) of \(Self.bytes(t.bytesTotal))"
                    + (t.relayed ? " (relayed as it arrives here)" : "") + "\n"
            }
        }
        if let keptDirectories, !keptDirectories.isEmpty {
            out += "kept here, deleted elsewhere (they hold only files that are not synced, left alone):\n"
            for path in keptDirectories { out += "  \(path)\n" }
            if let count = keptDirectoryCount, count > keptDirectories.count {
                out += "  ... and \(count - keptDirectories.count) more\n"
            }
        }
        if let count = notSyncedCount, count > 0 {
            let listed = notSynced ?? []
            let atLeast = notSyncedCountIsLowerBound == true ? "at least " : ""
            out += "not synced here: \(atLeast)\(count) (only regular files, directories and symlinks with UTF-8 names sync):\n"
            for entry in listed { out += "  \(entry)\n" }
            if count > listed.count { out += "  ... and \(atLeast)\(count - listed.count) more\n" }
        }
        if !recentConflicts.isEmpty {
            out += "recent conflicts (the losing edit is kept as this copy):\n"
            for c in recentConflicts { out += "  \(c)\n" }
        }
        if !recentErrors.isEmpty {
            out += "recent errors:\n"
            for e in recentErrors { out += "  \(e)\n" }
        }
        return out
    }

    static func bytes(_ n: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[unit])
    }
}
