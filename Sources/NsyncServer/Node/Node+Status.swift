extension Node {
    /// What `nsyncd status` shows.
    func currentStatus() -> NodeStatus {
        let raft = driver?.raft
        let leading = raftStatus.role == .leader
        let backlog = fetcher?.backlog ?? (files: 0, bytes: 0)
        var peers: [NodeStatus.Peer] = []
        for link in links {
            let name = link.name ?? "?"
            let match = leading ? (raft?.matchIndex(of: name) ?? 0) : 0
            let behind: UInt64? = leading ? (raft.map { $0.lastIndex - min($0.lastIndex, match) }) : nil
            var files = 0
            var bytes: UInt64 = 0
            if link.name != nil {
                for record in index where record.kind != .deleted && !record.holders.contains(name) {
                    files += 1
                    bytes += record.size
                }
            }
            peers.append(NodeStatus.Peer(
                name: name, address: link.address.description, connected: link.raft != nil, matchIndex: match,
                behindEntries: behind, filesBehind: files, bytesBehind: bytes))
        }
        var notHeld = (files: 0, bytes: UInt64(0))
        for record in index where record.kind != .deleted && !record.holders.contains(config.name) {
            notHeld.files += 1
            notHeld.bytes += record.size
        }
        let now = loop.now
        let unavailable = unavailableFiles(limit: NodeStatus.unavailableListLimit)
        var transfers = (fetcher?.activeTransfers ?? []).filter { $0.total > 0 }.map { t in
            let seconds = Double(max(now - t.startedAt, 1)) / 1000
            return NodeStatus.Transfer(path: t.path, from: t.from, bytesDone: t.done, bytesTotal: t.total,
                                       bytesPerSecond: Double(t.done) / seconds)
        }
        for (path, p) in fetcher?.preparations ?? [] {
            let seconds = Double(max(now - p.startedAt, 1)) / 1000
            transfers.append(NodeStatus.Transfer(path: path, from: config.name, bytesDone: p.done, bytesTotal: p.total,
                                                 bytesPerSecond: Double(p.done) / seconds, stage: p.stage.rawValue))
        }
        return NodeStatus(
            name: config.name, role: driver == nil ? "starting (waiting for peers' names)" : "\(raftStatus.role)",
            term: raftStatus.term, leader: raftStatus.leader, commitIndex: raft?.commitIndex ?? 0,
            appliedIndex: index.appliedIndex, snapshotIndex: raft?.snapshotIndex ?? 0, files: index.count,
            peers: peers, transfers: transfers,
            sending: (transferServer?.activeStreams ?? []).map {
                NodeStatus.Sending(path: $0.path, to: $0.to, bytesDone: $0.done, bytesTotal: $0.total, relayed: $0.relayed)
            }, pendingFiles: backlog.files, pendingBytes: backlog.bytes,
            pendingAnnouncements: reconciler.pendingPutCount + sync.toObserve.count + sync.toObserveAfter.count,
            notHeldFiles: notHeld.files, notHeldBytes: notHeld.bytes,
            unavailable: unavailable.files, unavailableFiles: unavailable.count,
            bytesSent: transferServer?.bytesServed, bytesReceived: fetcher?.bytesReceived,
            bytesReused: fetcher?.bytesReused, bytesZeros: fetcher?.bytesZeros, scan: sync.scanProgress,
            recentConflicts: Array(recentConflicts), recentErrors: Array(recentErrors),
            uptimeSeconds: Double(now - startedAt) / 1000,
            keptDirectories: sync.keptDirectories.isEmpty
                ? nil : Array(sync.keptDirectories.keys.sorted().prefix(NodeStatus.unavailableListLimit)),
            keptDirectoryCount: sync.keptDirectories.isEmpty ? nil : sync.keptDirectories.count,
            notSynced: sync.notSynced.isEmpty
                ? nil : sync.notSynced.first(NodeStatus.unavailableListLimit).map(\.description),
            notSyncedCount: sync.notSynced.isEmpty ? nil : sync.notSynced.count,
            notSyncedCountIsLowerBound: sync.notSynced.isTruncated ? true : nil,
            disk: (try? FileSystem.space(config.root)).map {
                NodeStatus.Disk(freeBytes: $0.available, totalBytes: $0.total, keptFreeBytes: Fetcher.diskReserve(total: $0.total))
            })
    }

    /// Versions this node lacks and cannot fetch now, oldest first: those
    /// waiting with none of their holders connected, and those whose last
    /// attempt failed on the holder's side (retried meanwhile). Forgets
    /// failures of versions no longer current or now held here.
    func unavailableFiles(limit: Int) -> (files: [NodeStatus.Unavailable], count: Int) {
        let now = loop.now
        let seconds = { (since: UInt64) in Double(now - min(since, now)) / 1000 }
        let unreachable = fetcher?.unreachable(limit: limit) ?? (files: [], paths: [])
        var files = unreachable.files.map {
            NodeStatus.Unavailable(path: $0.path, version: $0.version, holders: $0.holders,
                                   reason: "no connection to a node holding it (\($0.holders.joined(separator: ", ")))",
                                   seconds: seconds($0.since))
        }
        var count = unreachable.paths.count
        let listed = unreachable.paths
        for (path, trouble) in sync.fetchTrouble {
            guard let record = index.record(at: path), record.version == trouble.version,
                  reconciler.manifest[path]?.version != trouble.version else {
                sync.fetchTrouble[path] = nil
                continue
            }
            guard !listed.contains(path) else { continue }
            count += 1
            files.append(NodeStatus.Unavailable(path: path, version: trouble.version, holders: record.holders.sorted(),
                                                reason: "the last attempt failed: \(trouble.why)", seconds: seconds(trouble.since)))
        }
        files.sort { $0.seconds > $1.seconds }
        return (Array(files.prefix(limit)), count)
    }

    /// Logs a warning, at most once a minute, while some version has been
    /// unavailable for 30 s: an operator must bring a holder back.
    func warnOfUnavailableFiles() {
        let now = loop.now
        // Looked at every 10 s: with 100,000 files queued the look is not free.
        guard now >= sync.unavailableWarnedAt + 60_000, now >= sync.unavailableCheckedAt + 10_000 else { return }
        sync.unavailableCheckedAt = now
        let unavailable = unavailableFiles(limit: 3)
        guard let oldest = unavailable.files.first, oldest.seconds >= 30 else { return }
        sync.unavailableWarnedAt = now
        let examples = unavailable.files.map { "\($0.path) (version \($0.version)): \($0.reason)" }.joined(separator: "; ")
        logger.warning("\(unavailable.count) files cannot be fetched or installed now, the oldest for \(Int(oldest.seconds)) s: \(examples)")
    }

    /// True when every change this node has seen is committed and every
    /// record is held by this node and by every member it can reach.
    func isSettled() -> (settled: Bool, missing: [String]) {
        var missing: [String] = []
        if reconciler.hasPendingWork || !sync.toObserve.isEmpty || !sync.toObserveAfter.isEmpty || sync.observeJobs > 0 || !sync.settling.isEmpty
            || !sync.installs.isEmpty || sync.installing || sync.scanning || sync.hardLinkRescan != nil {
            missing.append("local changes not yet committed or installed on this node")
        }
        if reconciler.isReplaying { missing.append("the Raft log not yet replayed (raft has not started)") }
        guard driver != nil, raftStatus.leader != nil else {
            return (false, missing + ["no raft leader"])
        }
        let reachable = [config.name] + links.filter { $0.raft != nil }.compactMap(\.name)
        var count = 0
        for record in index {
            let lacking = reachable.filter { !record.holders.contains($0) }
            guard !lacking.isEmpty else { continue }
            count += 1
            if missing.count < 10 { missing.append("\(record.path) (version \(record.version)) not yet on \(lacking.joined(separator: ","))") }
        }
        if count > 10 { missing.append("... \(count) paths in all") }
        return (missing.isEmpty, missing)
    }
}
