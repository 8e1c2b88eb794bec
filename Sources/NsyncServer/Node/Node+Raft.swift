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
            snapshotEncoder: { [unowned self] in
                // A copy of the value: the loop's next apply copies the tables
                // it changes, the pool encodes this one meanwhile.
                let frozen = index
                return { frozen.snapshotData() }
            },
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
        if reconciler.isReplaying {
            // Starting applied the log up to the commit index the node had
            // stopped at: what the index says now is news to the disk.
            logger.info("replayed the Raft log up to \(index.appliedIndex), where this node was when it stopped")
            perform(reconciler.endReplay(index: index))
            flushSoon()
        }
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
        let hold = removalHold()
        guard raftStatus.leader != nil, hold == 0 else {
            // No leader, or a burst of removals under way: keep the changes
            // and try again shortly.
            sync.flushScheduled = true
            loop.schedule(after: hold > 0 ? hold : 100) { [self] in
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

    // MARK: removal bursts

    /// A user's removal holds this node's proposals until no other came
    /// for `removalPause`; removals in a row (each within `removalQuiet`
    /// of the last) are a burst from the `removalBurst`th on, held until
    /// `removalQuiet` after the last. It may be `rm -rf` of PATH on its way
    /// to `.nsync` (in readdir order, so everything before it goes first):
    /// once `.nsync` goes, `stateDirectoryIsIntact` stops the node and those
    /// removals never leave it. A burst that ends with `.nsync` in place
    /// (`rm -rf` of a folder) is proposed whole, a second late; a lone
    /// removal, a quarter of a second late. Best effort: an `rm -rf` that
    /// pauses longer than that (a cold disk) lets what it removed so far go.
    static let removalPause: UInt64 = 250
    static let removalBurst = 64
    static let removalQuiet: UInt64 = 1_000
    /// A burst longer than this (millions of files) is held no longer:
    /// what it removed so far is proposed, the rest as it comes.
    static let removalHoldLimit: UInt64 = 60_000

    func noteRemovals(_ count: Int) {
        let now = loop.now
        if now - min(sync.removals.last, now) > Node.removalQuiet { sync.removals = (0, now, now) }
        if sync.removals.count < Node.removalBurst, sync.removals.count + count >= Node.removalBurst {
            logger.debug("a burst of removals: holding this node's changes until it ends")
        }
        sync.removals.count += count
        sync.removals.last = now
    }

    /// How long proposals still wait for the removals under way (0: none).
    func removalHold() -> UInt64 {
        let now = loop.now, removals = sync.removals
        guard removals.count > 0, now - min(removals.since, now) < Node.removalHoldLimit else { return 0 }
        let end = removals.last + (removals.count >= Node.removalBurst ? Node.removalQuiet : Node.removalPause)
        return end > now ? end - now : 0
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
