import Logging

extension Node {
    /// Starts Raft once every member's name is known (given as NAME@ or
    /// learned from its certificate): Raft counts votes by name.
    func startRaftIfNamed() {
        guard driver == nil, !stopping, let storage, let recovered else { return }
        let names = links.compactMap(\.name)
        guard names.count == links.count else {
            if !waitingForNamesLogged {
                waitingForNamesLogged = true
                let unknown = links.filter { $0.name == nil }.map(\.address.description)
                logger.notice("raft waits for the names of \(unknown.joined(separator: ", ")): they are learned on first contact; to start without them, write them as NAME@HOST:CLUSTER_PORT:FILE_PORT in --cluster")
            }
            return
        }
        var raftConfig = RaftConfig(name: config.name, peers: names)
        raftConfig.electionTicks = 6...12
        raftConfig.heartbeatTicks = 1
        raftConfig.snapshotThresholdEntries = UInt64(config.tuning.snapshotEntries)
        raftConfig.compactionTrailingEntries = UInt64(max(1, min(1_000, config.tuning.snapshotEntries / 4)))
        raftConfig.randomSeed = UInt64.random(in: 1...UInt64.max)
        let raft: Raft
        do {
            try raftConfig.validate()
            raft = try Raft(config: raftConfig, recovered: RaftRecoveredState(
                hardState: recovered.hardState, snapshot: recovered.snapshot, entries: recovered.entries))
        } catch {
            return fatal("cannot start Raft: \(error)")
        }
        members = raftConfig.members
        self.recovered = nil
        let hooks = RaftDriver.Hooks(
            send: { [unowned self] in sendRaft($0) },
            restore: { [unowned self] in restoreIndex(from: $0) },
            apply: { [unowned self] in apply($0) },
            snapshotData: { [unowned self] in index.snapshotData() },
            statusChanged: { [unowned self] status in
                if status.leader != raftStatus.leader || status.role != raftStatus.role {
                    logger.info("raft: \(status.role) in term \(status.term), leader \(status.leader ?? "none")")
                }
                raftStatus = status
                if status.role == .leader { scheduleTombstoneCleanup() }
                flushSoon()
            },
            fatal: { [unowned self] in fatal($0) })
        let driver = RaftDriver(raft: raft, storage: storage, recoveredSnapshot: recovered.snapshot,
                                loop: loop, hooks: hooks, logger: logger)
        self.driver = driver
        driver.start(tickMilliseconds: config.tuning.tickMilliseconds)
        logger.info("raft started", metadata: ["members": "\(members.joined(separator: ","))"])
    }

    /// A snapshot from the leader replaced the index: reconcile everything.
    private func restoreIndex(from snapshot: RaftSnapshot) {
        do {
            index = try FileIndex(snapshotData: snapshot.data)
        } catch {
            return fatal("the leader's snapshot does not decode: \(error)")
        }
        logger.info("index restored from a snapshot", metadata: ["index": "\(snapshot.metadata.index)", "paths": "\(index.count)"])
        perform(reconciler.reconcileAll(index: index))
        fetcher.holdersAdded()
    }

    /// Applies committed entries to the index, in order, and lets the
    /// reconciler act on what changed.
    private func apply(_ entries: [RaftEntry]) {
        var actions: [SyncAction] = []
        var holdsApplied = false
        for entry in entries where entry.kind == .command && entry.data.first != Node.opaqueEntryMarker {
            let command: IndexCommand
            do {
                command = try IndexCommand(decoding: entry.data)
            } catch {
                // Every node decodes the same bytes the same way, so skipping keeps them identical.
                recordError("entry \(entry.index) does not decode as an index command: \(error); skipped")
                continue
            }
            let outcomes = index.apply(command, at: entry.index)
            for (change, outcome) in zip(command.changes, outcomes) {
                if case .hold = change { holdsApplied = true }
                if case .invalid(let reason) = outcome {
                    logger.warning("rejected change to \(change.path) from \(command.origin): \(reason)")
                }
            }
            actions += reconciler.applied(command, outcomes: outcomes, index: index)
        }
        perform(actions)
        flushSoon()
        transferServer.indexAdvanced()
        if holdsApplied { fetcher.holdersAdded() }
    }

    /// First byte of an entry that is not an index command and that every
    /// node skips (`nsyncd bench raft` proposes such load). Index commands
    /// start with their format byte (1), so the two cannot be confused.
    static let opaqueEntryMarker: UInt8 = 0xFF

    // MARK: proposing

    /// Changes per Raft entry: big enough that 10,000 files take a handful of
    /// entries, small enough to stay far below the append size limit.
    static let maxChangesPerProposal = 2_000

    /// Proposes what the reconciler queued, at the end of this loop turn, so
    /// everything found in one burst of events travels in one entry.
    func flushSoon() {
        logger.trace("flushSoon", metadata: ["scheduled": "\(sync.flushScheduled)", "outbox": "\(reconciler.hasOutbox)", "driver": "\(driver != nil)"])
        guard !sync.flushScheduled, reconciler.hasOutbox, driver != nil else { return }
        sync.flushScheduled = true
        loop.schedule(after: 0) { [self] in
            sync.flushScheduled = false
            flushProposals()
        }
    }

    private func flushProposals() {
        guard let driver, stateDirectoryIsIntact() else { return }
        guard raftStatus.leader != nil else {
            // No leader: keep the changes and try again shortly.
            sync.flushScheduled = true
            loop.schedule(after: 100) { [self] in
                sync.flushScheduled = false
                flushProposals()
            }
            return
        }
        let changes = reconciler.takeOutbox()
        var start = 0
        while start < changes.count {
            let batch = Array(changes[start..<min(start + Node.maxChangesPerProposal, changes.count)])
            start += batch.count
            let command = IndexCommand(origin: config.name, changes: batch)
            logger.debug("proposing \(batch.count) changes")
            driver.propose(command.encoded()) { [self] outcome in
                if case .failed(let why) = outcome {
                    logger.debug("proposal of \(batch.count) changes failed: \(why); retrying")
                    reconciler.proposalFailed(batch)
                    loop.schedule(after: 100) { [self] in flushSoon() }
                }
            }
        }
    }

    // MARK: tombstones

    /// While leading, removes tombstones every member holds (the seed's
    /// "leader cleans up what is synced everywhere").
    func scheduleTombstoneCleanup() {
        guard !sync.cleanupScheduled else { return }
        sync.cleanupScheduled = true
        loop.schedule(after: 2_000) { [self] in
            sync.cleanupScheduled = false
            guard raftStatus.role == .leader, !stopping, let driver else { return }
            let done = index.tombstonesHeldByAll(members: members)
            if !done.isEmpty {
                let changes = done.prefix(Node.maxChangesPerProposal).map { IndexChange.forget(path: $0.path, version: $0.version) }
                driver.propose(IndexCommand(origin: config.name, changes: Array(changes)).encoded()) { _ in }
            }
            scheduleTombstoneCleanup()
        }
    }
}
