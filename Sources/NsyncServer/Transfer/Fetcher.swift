#if canImport(Glibc)
import Glibc
#endif
import Collections
import Logging

/// Fetches file versions from peers that hold them: many requests pipelined
/// per file channel, bytes written to `.nsync/tmp/` on the thread pool while
/// more arrive, hashed as they are written (no second pass), verified
/// against the index's SHA-256. A transfer cut off by a dead holder resumes
/// from the bytes it has, on another holder; `.part` files left by a crash
/// are resumed too. Loop thread only.
final class Fetcher {
    /// A fetched file, complete and verified, waiting to be installed.
    struct Fetched {
        var record: FileRecord
        var expected: LocalFile?
        var temporaryPath: String
    }

    struct Hooks {
        /// The bytes are in `temporaryPath`, verified; mode and mtime are set.
        var fetched: (Fetched) -> Void
        /// The fetch could not finish now; the reconciler retries later.
        /// `local` is true when this node is at fault (its disk, e.g. full),
        /// not the holder: the operator must act.
        var failed: (_ record: FileRecord, _ why: String, _ local: Bool) -> Void
        /// What to do with an offered file before its announcement: copy
        /// it, or not (this node may already have it, or ignore it), or
        /// hash the blocks of the version held here for its fetch.
        var answerOffer: (FileOffer) -> OfferAnswer
        /// What this node's manifest says it holds at a path now.
        var heldFile: (String) -> LocalFile?
        /// Who holds `record`'s version now: nodes that fetched it since the
        /// fetch was asked for serve it too.
        var holders: (FileRecord) -> Set<NodeName>
        /// A pass over this node's own new version's blocks ended (`hashOwnBlocks`).
        var ownBlocksSettled: () -> Void = {}
    }

    /// Requests in flight per channel, and bytes buffered for the disk before
    /// reading from the channel pauses.
    static let maxRequestsPerChannel = 64
    /// Downloads at least this large are written around the page cache
    /// (ChunkWriter); smaller ones go through it, where many are made
    /// durable by one flush at install.
    static let directWriteMinimumSize: UInt64 = 8 << 20
    /// Bytes of a download between two writeback kicks.
    static let writebackStride: UInt64 = 16 << 20
    static let pauseAboveBufferedBytes = 4 << 20
    /// Offered files at least this large are copied before their
    /// announcement: for them the origin's hashing is worth overlapping.
    static let speculationMinimumSize: UInt64 = 64 << 20
    /// How long a complete copy of an offered file waits for its record
    /// before it is dropped (ms).
    static let speculationLifetime: UInt64 = 60_000
    static let resumeBelowBufferedBytes = 1 << 20

    let loop: EventLoop
    /// PATH: where the versions this node holds are (`Fetcher+Extend`).
    let root: String
    let temporaryDirectory: String
    let logger: Logger
    let hooks: Hooks
    var waiting: Deque<Transfer> = []
    /// Copies of held versions running (`Fetcher+Extend`), and the
    /// versions not to fetch that way again (a try failed).
    var copiesRunning = 0
    /// The path whose held blocks `hashAhead` hashes, how far it got, and
    /// whether a fetch asked for the copy slot.
    var hashingAhead: (path: String, preparation: Preparation, yielded: Bool)?
    /// This node's new versions whose blocks are hashed for their fetchers, by path (`hashOwnBlocks`).
    var ownPasses: [String: OwnPass] = [:]
    /// Leftover early copies (`offered-*.part`) whose file was offered again
    /// since the restart, and when last: the sweep keeps them while offers come.
    private(set) var leftoverOffers: [String: UInt64] = [:]
    /// Block digests of versions held or fetched here, by content.
    var blockMemory = BlockDigestMemory()
    var notExtending = Set<VersionKey>()
    /// Sparse versions whose `.part` ran out of room here after taking more
    /// than their holder said the whole file takes (their holes are too
    /// small to stay holes here): their next try needs their whole size
    /// free before it starts, instead of filling the disk again. Bounded.
    var denseHere = Set<VersionKey>()
    /// By path: the version being fetched and when (loop ms) a fetch of it
    /// last failed at each holder (wrong bytes, an answer that cannot be, a
    /// refusal, no answer): its retries, which are new transfers, go to a
    /// holder that has not failed first, else to the one that failed
    /// longest ago. Otherwise a holder whose copy went bad on its disk, and
    /// that the choice of holder keeps picking, would be asked again every
    /// second for ever while another holder has the right bytes. A channel
    /// that merely closed is no failure. Bounded; dropped on success.
    private var failedAt: [String: (version: UInt64, at: [NodeName: UInt64])] = [:]
    static let maxFailedPaths = 20_000

    /// A version of a path.
    struct VersionKey: Hashable {
        var path: String
        var version: UInt64
    }
    private var links: [NodeName: Link] = [:]
    private var nextRequestID: UInt32 = 1
    private var placementQueued = false
    /// `.part` files found at start-up: resumable.
    private var leftovers: Set<String>
    /// Whether a `.part` may have outlived its transfer (found at start-up,
    /// or kept by a transfer given up): the node then sweeps the temporary
    /// directory once it has nothing left to fetch.
    var mayHoldStalePartials: Bool
    /// Bytes received since start (status, benchmarks).
    private(set) var bytesReceived: UInt64 = 0
    /// Bytes of new versions copied from the versions this node held (an
    /// append's start, blocks a holder said were the same) instead of received.
    var bytesReused: UInt64 = 0
    /// Bytes that came as `.zeros`, not as data.
    var bytesZeros: UInt64 = 0
    /// Copies of offered files, complete and verified against nothing yet,
    /// waiting for the record that announces them; by path.
    private var speculated: [String: Speculated] = [:]
    /// Early copies that arrived whole and are being written and hashed.
    private var finishingSpeculations: [String: Transfer] = [:]

    struct Speculated {
        var size: UInt64
        var digest: [UInt8]
        var temporaryPath: String
        var finishedAt: UInt64
    }

    init(loop: EventLoop, root: String, temporaryDirectory: String, leftovers: Set<String>, logger: Logger, hooks: Hooks) {
        self.loop = loop
        self.root = root
        self.temporaryDirectory = temporaryDirectory
        self.leftovers = leftovers
        mayHoldStalePartials = !leftovers.isEmpty
        self.logger = logger
        self.hooks = hooks
    }

    /// One file being fetched: its request, temporary file and running hash.
    final class Transfer {
        /// Version 0 while speculative (an offered file, not yet announced).
        var record: FileRecord
        var expected: LocalFile?
        let temporaryPath: String
        /// A copy of an offered file that no record asked for (yet).
        var speculative = false
        var requestID: UInt32 = 0
        var holder: NodeName?
        /// Holders that failed this transfer; tried again only when no other is left.
        var avoid: Set<NodeName> = []
        /// Reading done here before it asks a holder (status), while it runs.
        var preparation: Preparation?
        var fd: FileDescriptor?
        let hasher = SHA256()
        /// Bytes received in order (written or queued for writing).
        var received: UInt64 = 0
        /// Bytes made it to the temporary file.
        var written: UInt64 = 0
        /// Arrived, in order, not yet written.
        var pending: [Piece] = []
        /// The links the pending bytes came in on, and how many from each:
        /// a transfer can move to another link (a redirect, a relay that
        /// stopped) while bytes of the first wait for the disk, and they must
        /// be released on the link that counted them, or it stays paused.
        var pendingSources: [(link: Link, bytes: Int)] = []
        var pendingBytes: Int { pendingSources.reduce(0) { $0 + $1.bytes } }
        var writing = false
        var headerSeen = false
        /// What the file takes on its holder's disk, from the holder's header
        /// (`FetchHeader.allocated`): less than its size when sparse.
        var holderAllocated: UInt64?
        var ended = false
        var failed = false
        /// A resumed `.part` still to be opened and hashed up to its size.
        var resumeFromDisk = false
        /// The file this node holds at the path, smaller than the new
        /// version, which may extend it (a log appended to): copied into
        /// the `.part` before the first request (`Fetcher+Extend`).
        var extending: LocalFile?
        /// The SHA-256 of the bytes copied from it, named by the request
        /// that follows the copy, until a holder has answered it.
        var prefixDigest: [UInt8]?
        /// Whether it started from a copy of the held version.
        var copiedHeldBytes = false
        /// The file this node holds at the path, another version of the
        /// same size or larger (edited in place, say): its blocks are
        /// hashed before the first request (`Fetcher+Blocks`).
        var matching: LocalFile?
        /// The digests of `blockSource`'s blocks, sent with requests: the
        /// holder answers `.same` for the blocks it has too.
        var blocks: BlockDigests?
        var blockSource: LocalFile?
        /// The new version's block digests, worked out as it is written.
        var digestBuilder: BlockDigestBuilder?
        /// Bytes copied from `blockSource` instead of received.
        var matchedBytes: UInt64 = 0
        /// Bytes that came as `.zeros`, not over the network as bytes.
        var zeroBytes: UInt64 = 0
        /// Bytes it had before any arrived (resumed or copied).
        var presentAtStart: UInt64 = 0
        var startedAt: UInt64 = 0
        var lastLoggedAt: UInt64 = 0
        /// When it last went into the waiting queue (loop ms).
        var queuedAt: UInt64 = 0
        /// The version this transfer asked for at first (0 for an offered
        /// file, even once adopted): what a relay request names.
        let requestedVersion: UInt64
        /// Peers relaying from this transfer read through this.
        var feed: RelayFeed?
        /// A holder sent us to this node (receiving the same version): ask it next.
        var relay: NodeName?
        /// Redirected once already: later requests say `noRedirect`.
        var redirected = false
        /// The request in flight went to a relay, not to a holder.
        var onRelay = false
        /// When its request went out or its holder last sent it something
        /// (loop ms), and the link's `answeredBytes` then: a stream stuck at
        /// a holder that answers others.
        var lastProgress: UInt64 = 0
        var answeredAtProgress: UInt64 = 0

        init(record: FileRecord, expected: LocalFile?, temporaryPath: String) {
            self.record = record
            self.expected = expected
            self.temporaryPath = temporaryPath
            requestedVersion = record.version
        }

        /// Peers relaying from this transfer stop (it failed or went back to the queue).
        func stopFeed() {
            feed?.fail()
            feed = nil
        }
    }

    /// A ready file channel to one peer and the transfers on it.
    final class Link {
        let peer: NodeName
        let channel: Channel
        var active: [UInt32: Transfer] = [:]
        var bufferedBytes = 0
        var paused = false
        /// Why this node closed the channel: the peer broke the protocol.
        var violation: String?
        /// When the peer last answered a request (loop ms), or when the
        /// first request went out after a time with none in flight.
        var lastAnswer: UInt64
        /// File bytes the peer sent or said were the same, for any request.
        var answeredBytes: UInt64 = 0
        /// The most a holder sends of one stream in one turn, as far as this
        /// link has seen: its largest data frame (its chunk size; at least
        /// the default) or the largest block size asked for (a read of blocks).
        var largestTurn: UInt64 = 256 << 10
        init(peer: NodeName, channel: Channel, now: UInt64) {
            self.peer = peer
            self.channel = channel
            lastAnswer = now
        }
    }

    // MARK: public

    /// Fetches `record` unless it is already being fetched.
    func fetch(_ record: FileRecord, expected: LocalFile?) {
        if adoptSpeculation(record, expected: expected) { return }
        // Unique per path: files with the same content committed in one Raft
        // entry share version and hash, and one .part for both would mix
        // their mtimes and let one transfer truncate the other's bytes.
        // Still deterministic, so a restarted node resumes its .part files.
        let pathDigest = Fetcher.pathDigest(record.path)
        var name = "\(record.version)-\(SHA256.hex(record.hash).prefix(16))-\(pathDigest).part"
        var resume = leftovers.remove(name) != nil
        if !resume, leftovers.remove(Fetcher.offeredName(pathDigest, size: record.size)) != nil {
            // An early copy cut off by a restart: most likely the start of
            // this very version; the hash at the end tells.
            name = Fetcher.offeredName(pathDigest, size: record.size)
            leftoverOffers[name] = nil
            resume = true
        }
        let transfer = Transfer(record: record, expected: expected, temporaryPath: temporaryDirectory + "/" + name)
        transfer.resumeFromDisk = resume
        if let failed = failedAt[record.path], failed.version != record.version { failedAt[record.path] = nil }
        if let expected, !notExtending.contains(VersionKey(path: record.path, version: record.version)) {
            if !resume, Fetcher.mayExtend(expected, to: record) {
                transfer.extending = expected
            } else if Fetcher.mayMatchBlocks(expected, to: record) {
                // Also after a restart: the rest of the `.part` goes by blocks too.
                transfer.matching = expected
            }
        }
        transfer.startedAt = loop.now
        transfer.queuedAt = loop.now
        waiting.append(transfer)
        schedule()
    }

    /// The `.part` files of an earlier run were removed (by the node's
    /// sweep), but for `kept`.
    func forgetLeftovers(except kept: Set<String> = []) {
        leftovers.formIntersection(kept)
        leftoverOffers = leftoverOffers.filter { kept.contains($0.key) }
    }

    /// Files waiting or in flight, and the bytes they still need.
    var backlog: (files: Int, bytes: UInt64) {
        var files = waiting.count + preparing.count
        var bytes = (Array(waiting) + preparing.values).reduce(UInt64(0)) { $0 + $1.record.size - min($1.received, $1.record.size) }
        for link in links.values {
            files += link.active.count
            bytes += link.active.values.reduce(UInt64(0)) { $0 + $1.record.size - min($1.received, $1.record.size) }
        }
        return (files, bytes)
    }

    /// Transfers requested and not finished.
    var inFlight: Int { links.values.reduce(0) { $0 + $1.active.count } }

    /// Transfers in flight (for status): path, holder, bytes done and total, start time.
    var activeTransfers: [(path: String, from: NodeName, done: UInt64, total: UInt64, startedAt: UInt64)] {
        links.values.flatMap { link in
            link.active.values.map { ($0.record.path, link.peer, $0.received, $0.record.size, $0.startedAt) }
        }
    }

    /// Transfers reading here before they ask a holder, and how far they got.
    var preparations: [(path: String, preparation: Preparation)] {
        preparing.values.compactMap { t in t.preparation.map { (t.record.path, $0) } }
            + (hashingAhead.map { [($0.path, $0.preparation)] } ?? [])
    }

    /// Waiting fetches that no holder this node is connected to can serve
    /// (the holders are down or cut off), oldest first: path, version,
    /// holders, and since when (loop ms). At most `limit`, and how many in all.
    func unreachable(limit: Int) -> (files: [(path: String, version: UInt64, holders: [NodeName], since: UInt64)],
                                     paths: Set<String>) {
        let connected = Set(links.values.filter { $0.channel.isReady }.map(\.peer))
        var found: [(transfer: Transfer, holders: Set<NodeName>)] = []
        for transfer in waiting where !transfer.writing {
            let holders = holders(of: transfer)
            if holders.isDisjoint(with: connected) { found.append((transfer, holders)) }
        }
        let paths = Set(found.map(\.transfer.record.path))
        let oldest = found.sorted { $0.transfer.queuedAt < $1.transfer.queuedAt }.prefix(limit)
        return (oldest.map { ($0.transfer.record.path, $0.transfer.record.version, $0.holders.sorted(), $0.transfer.queuedAt) },
                paths)
    }

    private func holders(of transfer: Transfer) -> Set<NodeName> {
        transfer.speculative ? transfer.record.holders : hooks.holders(transfer.record)
    }

    /// Nodes announced holding versions: a waiting fetch may have a new holder to go to.
    func holdersAdded() {
        if !waiting.isEmpty { schedule() }
    }

    func channelReady(_ peer: NodeName, _ channel: Channel) {
        links[peer]?.channel.close()
        let link = Link(peer: peer, channel: channel, now: loop.now)
        links[peer] = link
        channel.onFrame = { [unowned self, unowned link] frame in receive(frame, on: link) }
        schedule()
    }

    /// The channel to `peer` closed: its transfers go back to the queue and
    /// resume from what they have, on another holder if there is one. When
    /// we closed it because the peer broke the protocol, they are given up
    /// instead and retried later (the reconciler's pace): the channel is
    /// dialled again at once, and a peer that breaks it on every request
    /// would otherwise be asked again, and reconnected to, in a tight loop.
    func channelClosed(_ peer: NodeName, _ channel: Channel) {
        guard let link = links[peer], link.channel === channel else { return }
        links[peer] = nil
        for transfer in link.active.values.sorted(by: { $0.requestID < $1.requestID }) {
            if transfer.speculative {
                dropSpeculation(transfer, "the channel to \(peer) closed")
                continue
            }
            if let violation = link.violation {
                transfer.holder = nil
                noteFailure(transfer, at: peer)
                giveUp(transfer, "\(peer) broke the file protocol (\(violation)); the channel was closed")
            } else {
                requeue(transfer, avoiding: peer)
            }
        }
        schedule()
    }

    /// Closes the channel to a peer that sent what no request can explain
    /// (a frame that does not decode, a request from a server).
    private func closeForViolation(_ link: Link, _ why: String) {
        logger.warning("closing the file channel to \(link.peer): \(why)")
        link.violation = why
        link.channel.close()
    }

    /// The holder sent what cannot be for this transfer (bytes out of
    /// place or past the end, `.same` for bytes this node never offered, a
    /// size the index does not have): this attempt ends, the holder is told
    /// to stop, and the file is retried later, from another holder first.
    /// The channel stays up for its other transfers.
    private func reject(_ transfer: Transfer, on link: Link, _ why: String) {
        logger.warning("\(link.peer) \(why); not taking \(transfer.record.path) from it")
        drop(transfer, from: link, "\(link.peer) \(why)")
        schedule()
    }

    /// Ends this attempt at `link`'s holder (told to stop sending), which
    /// the retries of the version avoid while another holder has it.
    private func drop(_ transfer: Transfer, from link: Link, _ why: String) {
        cancel(transfer)
        link.active[transfer.requestID] = nil
        noteFailure(transfer, at: link.peer)
        giveUp(transfer, why)
    }

    /// A holder that answers none of the requests in flight on its channel
    /// for this long is taken for stuck (its disk hangs, say): keepalives
    /// still come, so the channel looks alive, and the files would wait on
    /// it for ever while another holder could send them (ms).
    var stallLimit: UInt64 = Fetcher.defaultStallLimit
    static let defaultStallLimit: UInt64 = 60_000
    /// A holder checks the prefix a request names (`prefixDigest`) before
    /// it answers: allowed this rate (bytes per second) on top of the limit.
    static let prefixCheckRate: UInt64 = 25 << 20
    private var lastStallCheck: UInt64 = 0
    /// Temporary files of transfers given up while a write job of theirs
    /// ran: a retry of the version (same file name) starts once it ended,
    /// so that the job's late bytes never land in the retry's file.
    private var closingWrites = Set<String>()
    /// Transfers whose preparation runs (`Fetcher+Prepare`): in no queue meanwhile.
    var preparing: [ObjectIdentifier: Transfer] = [:]
    /// `shutdown()` ran: preparations stop at their next step.
    var stopped = false

    /// Takes back the requests of each link whose holder answered none of
    /// them for `stallLimit` (called every second) and sends them to other
    /// holders first, each resuming from what it has (back to the same
    /// holder when it is the only one: after another `stallLimit`, not in a
    /// loop). Relayed requests wait on the relay's own source, whose stall
    /// the relay notices: they are left alone. The channel stays.
    func checkStalls() {
        let now = loop.now
        // This loop was held up (or the process stopped): what arrived
        // meanwhile is not read yet, so the silence may be ours.
        let late = now - min(now, lastStallCheck) > 3_000
        lastStallCheck = now
        for link in links.values where !link.active.isEmpty {
            if link.paused || late {
                link.lastAnswer = now  // we stopped reading, not the holder answering
                for transfer in link.active.values {
                    transfer.lastProgress = now
                    transfer.answeredAtProgress = link.answeredBytes
                }
                continue
            }
            let waiting = link.active.values.filter { !$0.onRelay }.sorted { $0.requestID < $1.requestID }
            guard !waiting.isEmpty else { continue }
            checkStreamStalls(waiting, on: link, now: now)
            // A holder checks each prefix a request names before answering it.
            let checks = waiting.reduce(UInt64(0)) { $0 + ($1.headerSeen || $1.prefixDigest == nil ? 0 : $1.received) }
            let silence = now - min(now, link.lastAnswer)
            guard silence >= stallLimit + checks * 1_000 / Fetcher.prefixCheckRate else { continue }
            logger.warning("\(link.peer) answered none of \(waiting.count) requests for \(silence / 1000) s; asking other holders")
            for transfer in waiting where link.active[transfer.requestID] === transfer {
                cancel(transfer)
                link.active[transfer.requestID] = nil
                noteFailure(transfer, at: link.peer)
                requeue(transfer, avoiding: link.peer)
            }
            link.lastAnswer = now
        }
    }

    /// The request a holder's message answers, and the bytes it counts
    /// toward the link's turns (`checkStreamStalls`): a data frame's, a
    /// `.same` run's up to one turn (a holder that knows its digests
    /// answers a whole run unread, in one frame, and that is no round of
    /// other streams' turns), none for a header or an end.
    static func answer(in message: TransferMessage, largestTurn: UInt64) -> (UInt32, UInt64)? {
        switch message {
        case .header(let header): (header.requestID, 0)
        case .data(let id, _, let data): (id, UInt64(data.count))
        case .same(let id, _, let length), .zeros(let id, _, let length): (id, min(length, largestTurn))
        case .end(let id): (id, 0)
        default: nil
        }
    }

    /// A holder streams its files a turn each (a chunk, or one read of
    /// blocks), from the header on: a started stream that got nothing for
    /// the stall limit, while the holder sent other requests more than two
    /// full rounds of turns, is stuck on that file (a read that hung on a
    /// bad sector, say). That request is taken back and resumed at another
    /// holder; the link stays. Counting rounds, not only time, keeps a slow
    /// link (where one round of 16 MiB block reads takes minutes) from
    /// looking stuck. Not before the header (a request may wait its turn
    /// behind the holder's other streams), not for early copies of offered
    /// files (their source may still be growing), and not when no other
    /// holder could take it: asked again, the same holder would only hang
    /// another read.
    private func checkStreamStalls(_ waiting: [Transfer], on link: Link, now: UInt64) {
        for transfer in waiting where transfer.headerSeen && !transfer.speculative
            && now - min(now, transfer.lastProgress) >= stallLimit {
            guard link.active[transfer.requestID] === transfer else { continue }
            // Between two turns of a healthy stream: the other streams' turns
            // and the small answers between them, each at most `largestTurn`.
            let round = 2 * UInt64(TransferServer.maxStreams) * link.largestTurn
            guard link.answeredBytes &- transfer.answeredAtProgress > 2 * round,
                  hasOtherHolder(transfer, than: link.peer) else { continue }
            let silence = (now - transfer.lastProgress) / 1000
            logger.warning("\(link.peer) sent nothing more of \(transfer.record.path) for \(silence) s while answering other requests; asking other holders")
            cancel(transfer)
            link.active[transfer.requestID] = nil
            noteFailure(transfer, at: link.peer)
            requeue(transfer, avoiding: link.peer)
        }
    }

    /// Whether a ready holder other than `peer` that has not failed this
    /// version could take `transfer`.
    private func hasOtherHolder(_ transfer: Transfer, than peer: NodeName) -> Bool {
        let holders = holders(of: transfer)
        let failed = failedAt[transfer.record.path].flatMap { $0.version == transfer.record.version ? $0.at : nil } ?? [:]
        return links.values.contains {
            $0.peer != peer && holders.contains($0.peer) && $0.channel.isReady && failed[$0.peer] == nil
        }
    }

    /// Puts an in-flight transfer back in the queue (its holder's channel
    /// closed, a relay stopped, a redirect came): it resumes from what it
    /// has. Peers relaying from it stop; they resume elsewhere too.
    private func requeue(_ transfer: Transfer, avoiding peer: NodeName?, first: Bool = false) {
        transfer.holder = nil
        transfer.headerSeen = false
        transfer.holderAllocated = nil
        transfer.onRelay = false
        if let peer { transfer.avoid.insert(peer) }
        transfer.stopFeed()
        if transfer.speculative {
            // An early copy never waits in the queue (its adoption looks only
            // at transfers in flight): it goes on now, or not at all.
            if !start(transfer) { dropSpeculation(transfer, "no node to copy it from now") }
            return
        }
        // Sent on at once when it can go: a relay asked for right after us
        // finds our transfer in flight (and relays it) rather than queued.
        if first, start(transfer) { return }
        transfer.queuedAt = loop.now
        if first { waiting.prepend(transfer) } else { waiting.append(transfer) }
        schedule()
    }

    /// What this node's server relays from when a peer asks for `version`
    /// of `path` while this node is receiving it: nil unless a transfer of
    /// that version is in flight here (and not given up). A transfer that is
    /// itself relayed serves too: chains longer than two. (No cycle: a
    /// holder only sends a receiver along a chain on its first request.)
    func relayFeed(path: String, version: UInt64) -> RelayFeed? {
        for link in links.values {
            for transfer in link.active.values where transfer.record.path == path && transfer.requestedVersion == version
                && !transfer.failed && transfer.prefixDigest == nil {
                if transfer.feed == nil {
                    transfer.feed = RelayFeed(size: transfer.record.size, temporaryPath: transfer.temporaryPath,
                                              written: transfer.written, arrived: transfer.received)
                    transfer.feed?.allocated = transfer.holderAllocated
                }
                return transfer.feed
            }
        }
        return nil
    }

    /// Stops everything; temporary files stay for a later resume.
    func shutdown() {
        stopped = true
        for link in links.values {
            for transfer in link.active.values {
                transfer.failed = true
                transfer.stopFeed()
                closeFile(transfer)
            }
        }
        for transfer in waiting { closeFile(transfer) }
        waiting.removeAll()
        links.removeAll()
    }

    // MARK: scheduling

    /// Places waiting transfers at the end of this loop turn (many events
    /// in one turn, e.g. a batch of 2,000 new files, place once).
    func schedule() {
        guard !placementQueued else { return }
        placementQueued = true
        loop.schedule(after: 0) { [weak self] in
            guard let self else { return }
            placementQueued = false
            placeWaiting()
        }
    }

    /// Sends requests while some channel has room. The work per call is
    /// bounded by the room there is, so thousands of queued files cost
    /// O(files) in all, not O(files) per completed file.
    private func placeWaiting() {
        var room = links.values.reduce(0) { $0 + max(0, Fetcher.maxRequestsPerChannel - $1.active.count) }
        guard room > 0, !waiting.isEmpty else { return }
        var examined = 0
        let budget = room * 4 + 64
        var skipped: [Transfer] = []
        while room > 0, examined < budget, let transfer = waiting.popFirst() {
            examined += 1
            if start(transfer) {
                room -= 1
            } else {
                skipped.append(transfer)
            }
        }
        // Those that could not go yet wait behind the rest, in their order.
        waiting.append(contentsOf: skipped)
    }

    /// Sends the transfer's request to the least busy ready holder; false if none can take it now.
    private func start(_ transfer: Transfer) -> Bool {
        if transfer.writing || closingWrites.contains(transfer.temporaryPath) { return false }
        var chosen: Link?
        if let relay = transfer.relay {
            transfer.relay = nil
            if let link = links[relay], link.channel.isReady, !transfer.avoid.contains(relay),
               link.active.count < Fetcher.maxRequestsPerChannel {
                chosen = link
            }
        }
        transfer.onRelay = chosen != nil
        if chosen == nil {
            let holders = holders(of: transfer)
            let ready = links.values.filter { holders.contains($0.peer) && $0.channel.isReady }
            let failed = failedAt[transfer.record.path].flatMap { $0.version == transfer.record.version ? $0.at : nil } ?? [:]
            let fresh = ready.filter { !transfer.avoid.contains($0.peer) && failed[$0.peer] == nil }
            let candidates = (fresh.isEmpty ? ready : fresh).filter { $0.active.count < Fetcher.maxRequestsPerChannel }
            // The least busy, or among those that failed, the one that failed
            // longest ago. Ties go by name: the choice is the same whatever
            // the order the links were made in (a dictionary's order is not).
            let failedSince = { (peer: NodeName) in failed[peer].map { $0 + 1 } ?? 0 }
            chosen = candidates.min(by: {
                (failedSince($0.peer), $0.active.count, $0.peer) < (failedSince($1.peer), $1.active.count, $1.peer)
            })
        }
        guard let link = chosen else { return false }
        if transfer.resumeFromDisk {
            resumeFromDisk(transfer)
            return true
        }
        if let held = transfer.extending {
            // One copy at a time: each reads and writes a whole held file
            // on the thread pool, which the raft log and installs share.
            guard copiesRunning == 0 else {
                askHashAheadToYield(for: transfer)
                return false
            }
            copyHeldBytes(transfer, held)
            return true
        }
        if let held = transfer.matching {
            // Hashing reads a whole held file too; remembered digests read nothing.
            guard copiesRunning == 0 || rememberedBlocks(of: held) != nil else {
                askHashAheadToYield(for: transfer)
                return false
            }
            hashHeldBlocks(transfer, held)
            return true
        }
        transfer.requestID = nextRequestID
        nextRequestID = nextRequestID &+ 1
        transfer.holder = link.peer
        if link.active.isEmpty { link.lastAnswer = loop.now }
        link.active[transfer.requestID] = transfer
        transfer.lastProgress = loop.now
        transfer.answeredAtProgress = link.answeredBytes
        if let blocks = transfer.blocks {
            link.largestTurn = max(link.largestTurn, UInt64(max(Int(blocks.blockSize), TransferServer.blockTurn)))
        }
        // A relayed request asks for the version the relay's own transfer
        // asked for (an offered file stays version 0 there until it is announced).
        let request = FetchRequest(requestID: transfer.requestID, path: transfer.record.path,
                                   version: transfer.onRelay ? transfer.requestedVersion : transfer.record.version,
                                   offset: transfer.received, noRedirect: transfer.redirected,
                                   prefixDigest: transfer.prefixDigest,
                                   blocks: transfer.blocks, takesZeros: true)
        if let frame = try? Frame.encode(type: TransferMessage.FrameType.request.rawValue, {
            TransferMessage.request(request).encodePayload(into: &$0)
        }) {
            link.channel.send(frame)
        }
        return true
    }

    /// Opens a `.part` left by an earlier run and hashes what it holds, then queues the rest.
    private func resumeFromDisk(_ transfer: Transfer) {
        transfer.resumeFromDisk = false
        transfer.writing = true
        let path = transfer.temporaryPath
        let hasher = transfer.hasher
        let limit = transfer.record.size
        prepare(transfer, .resuming, state: Resumed(total: limit)) { state in
            if state.fd == nil {
                let fd = try FileDescriptor.open(path, .readWrite)
                state.fd = fd
                let size = UInt64(try fd.size())
                guard size > 0, size <= limit else { throw SystemError(errno: EINVAL, operation: "resume", path: path) }
                state.total = size
            }
            let stepEnd = min(state.total, state.offset + Fetcher.preparationStep)
            while state.offset < stepEnd {
                // A read that fails ends the resume there: the rest comes from a holder.
                guard let chunk = try? state.fd!.read(upToCount: Int(min(1 << 20, stepEnd - state.offset)),
                                                       at: Int64(state.offset)),
                      !chunk.isEmpty else { return false }
                hasher.update(chunk)
                state.offset += UInt64(chunk.count)
            }
            return state.offset < state.total
        } finish: { [self] result in
            transfer.writing = false
            if case .success(let state) = result, let fd = state.fd, state.offset > 0 {
                transfer.fd = fd
                transfer.received = state.offset
                transfer.written = state.offset
                // The holder checks that these are its first bytes (a copy
                // of the held version cut off by a crash may not be).
                transfer.prefixDigest = transfer.hasher.digestSoFar()
                transfer.presentAtStart = state.offset
                logger.info("resuming \(transfer.record.path) from \(state.offset) bytes")
            } else {
                if case .success(let state) = result { state.close() }
                transfer.hasher.reset()
            }
            waiting.append(transfer)
            schedule()
        }
    }

    /// A `.part` of an earlier run hashed so far.
    struct Resumed: PreparationState {
        var total: UInt64
        var fd: FileDescriptor?
        var offset: UInt64 = 0
        var done: UInt64 { offset }
        func close() { try? fd?.close() }
    }

    // MARK: receiving

    private func receive(_ frame: Frame, on link: Link) {
        var payload = frame.payload
        let message: TransferMessage
        do {
            message = try TransferMessage.decode(type: frame.type, payload: &payload)
        } catch {
            closeForViolation(link, "\(error)")
            return
        }
        logger.trace("file channel message", metadata: ["peer": "\(link.peer)", "type": "\(message.frameType)"])
        if let (answered, bytes) = Fetcher.answer(in: message, largestTurn: link.largestTurn),
           let transfer = link.active[answered] {
            link.lastAnswer = loop.now
            link.answeredBytes &+= bytes
            if case .data = message { link.largestTurn = max(link.largestTurn, bytes) }
            transfer.lastProgress = loop.now
            transfer.answeredAtProgress = link.answeredBytes
        }
        switch message {
        case .header(let header):
            guard let transfer = link.active[header.requestID] else { return }
            if header.status == .redirect, !transfer.redirected, !transfer.onRelay,
               NodeNameRule.violation(in: header.message) == nil, header.message != link.peer {
                // Another node is receiving this very version from that holder:
                // take it from there as it arrives (the file then leaves its
                // origin once, not once per receiver).
                link.active[header.requestID] = nil
                transfer.redirected = true
                transfer.relay = header.message
                logger.debug("\(link.peer) sends us to \(header.message) for \(transfer.record.path)")
                requeue(transfer, avoiding: nil, first: true)
                return
            }
            if header.status == .prefixDiffers, transfer.prefixDigest != nil {
                link.active[header.requestID] = nil
                logger.debug("\(link.peer): \(transfer.record.path) does not extend the version held here; fetching it whole")
                startAgainFromZero(transfer)
                requeue(transfer, avoiding: nil, first: true)
                return
            }
            if header.status != .ok, transfer.onRelay {
                // The relay is not receiving it (any more): go to a holder.
                link.active[header.requestID] = nil
                transfer.redirected = true
                requeue(transfer, avoiding: link.peer, first: true)
                return
            }
            guard header.status == .ok else {
                link.active[header.requestID] = nil
                noteFailure(transfer, at: link.peer)
                giveUp(transfer, "\(link.peer) refused: \(header.status) \(header.message)")
                schedule()
                return
            }
            guard header.size == transfer.record.size else {
                reject(transfer, on: link, "has \(header.size) bytes of \(transfer.record.path), the index says \(transfer.record.size)")
                return
            }
            transfer.headerSeen = true
            transfer.holderAllocated = header.allocated
            transfer.feed?.allocated = header.allocated
            // Any holder's bytes are this one's: later requests need not ask again.
            transfer.prefixDigest = nil
            if transfer.record.size == 0 { queueWrite(transfer) }
        case let .data(id, offset, bytes):
            guard let transfer = link.active[id], transfer.headerSeen else { return }
            guard offset == transfer.received, offset + UInt64(bytes.count) <= transfer.record.size else {
                reject(transfer, on: link, "sent bytes \(offset)+\(bytes.count) where bytes from \(transfer.received) "
                       + "of \(transfer.record.size) were due")
                return
            }
            transfer.received += UInt64(bytes.count)
            bytesReceived += UInt64(bytes.count)
            logProgress(transfer, from: link.peer)
            transfer.pending.append(.bytes(offset, bytes))
            transfer.feed?.arrived(offset: offset, bytes: bytes)
            if let last = transfer.pendingSources.last, last.link === link {
                transfer.pendingSources[transfer.pendingSources.count - 1].bytes += bytes.count
            } else {
                transfer.pendingSources.append((link, bytes.count))
            }
            link.bufferedBytes += bytes.count
            if link.bufferedBytes > Fetcher.pauseAboveBufferedBytes, !link.paused {
                link.paused = true
                link.channel.connection.pauseReading()
            }
            queueWrite(transfer)
        case .end(let id):
            guard let transfer = link.active.removeValue(forKey: id) else { return }
            guard transfer.received == transfer.record.size else {
                if transfer.onRelay {
                    // Its own transfer stopped: resume from what we have, at a holder.
                    logger.debug("\(link.peer) stopped relaying \(transfer.record.path) at \(transfer.received) bytes")
                    requeue(transfer, avoiding: link.peer, first: true)
                    return
                }
                noteFailure(transfer, at: link.peer)
                giveUp(transfer, "\(link.peer) ended after \(transfer.received) of \(transfer.record.size) bytes")
                schedule()
                return
            }
            transfer.ended = true
            if transfer.speculative { finishingSpeculations[transfer.record.path] = transfer }
            queueWrite(transfer)
            schedule()
        case let .zeros(id, offset, length):
            guard let transfer = link.active[id], transfer.headerSeen else { return }
            guard offset == transfer.received, offset + length <= transfer.record.size else {
                reject(transfer, on: link, "sent zeros \(offset)+\(length) where bytes from \(transfer.received) "
                       + "of \(transfer.record.size) were due")
                return
            }
            // Not received as bytes (not in `bytesReceived`); hashed as the
            // zeros they are, and written as a hole where they are past the
            // file's end and long enough (`ChunkWriter`).
            transfer.zeroBytes += length
            bytesZeros += length
            transfer.feed?.arrivedZeros(offset: offset, length: length)
            take(.zeros(offset, length), of: transfer, from: link.peer)
        case let .same(id, offset, length):
            guard let transfer = link.active[id], transfer.headerSeen else { return }
            guard let source = transfer.blockSource, offset == transfer.received,
                  offset + length <= min(transfer.record.size, source.size) else {
                reject(transfer, on: link, "says bytes \(offset)+\(length) are those held here, which cannot be")
                return
            }
            transfer.matchedBytes += length
            bytesReused += length
            take(.held(offset, length), of: transfer, from: link.peer)
        case .offer(let offer):
            speculate(offer, from: link)
        case .request, .cancel:
            closeForViolation(link, "a server sent a request")
        }
    }

    /// A piece of `transfer` that is not received bytes (`.same`, `.zeros`),
    /// in order from `peer`: counted, and queued for the write job.
    private func take(_ piece: Piece, of transfer: Transfer, from peer: NodeName) {
        transfer.received += piece.length
        logProgress(transfer, from: peer)
        transfer.pending.append(piece)
        queueWrite(transfer)
    }

    /// Writes what arrived (all of it, in one job, but for copies of held
    /// bytes beyond `maxHeldBytesPerWrite`) unless a write is running;
    /// finishes the file once everything is written.
    private func queueWrite(_ transfer: Transfer) {
        guard !transfer.writing, !transfer.failed else { return }
        let chunks = Fetcher.takeWritable(&transfer.pending)
        let bytes = chunks.reduce(UInt64(0)) { $0 + $1.length }
        let sources = Fetcher.takeSources(&transfer.pendingSources, bytes: chunks.reduce(0) {
            if case .bytes(_, let b) = $1 { return $0 + b.count } else { return $0 }
        })
        let finish = transfer.ended && transfer.received == transfer.record.size && transfer.pending.isEmpty
        guard !chunks.isEmpty || finish || (transfer.fd == nil && transfer.record.size == 0 && transfer.headerSeen) else { return }
        transfer.writing = true
        let path = transfer.temporaryPath
        let hasher = transfer.hasher
        let existing = transfer.fd
        let record = transfer.record
        let directory = temporaryDirectory
        let root = self.root
        let source = transfer.blockSource
        let builder = transfer.digestBuilder
        let room = roomNeeded(by: transfer)
        // The holder's word as this job saw it (a requeue may forget it meanwhile).
        let holderAllocated = transfer.holderAllocated
        loop.queueWork({ () -> Result<(FileDescriptor, [UInt8]?), Error> in
            Result {
                if existing == nil { try Fetcher.checkSpace(for: record, needing: room.bytes, why: room.why, in: directory) }
                let fd = try existing ?? ChunkWriter.create(path, direct: record.size >= Fetcher.directWriteMinimumSize)
                var refused = 0  // the bytes of the write the room check refused, if it did
                var open = true
                do {
                    let buffered = !ChunkWriter.isDirect(fd)
                    try Fetcher.write(chunks, to: fd, heldAt: root, record.path, source, room: { bytes in
                        do { try Fetcher.checkSpace(for: record, adding: UInt64(bytes), in: directory) } catch {
                            refused = bytes
                            throw error
                        }
                    }) { hasher.update($0) }
                    builder?.add(chunks)
                    if buffered, let last = chunks.last {
                        // Every 16 MiB, start writing it out: the disk works while
                        // the network does, and the install's fsync finds little left.
                        let stride = Fetcher.writebackStride
                        let end = last.offset + last.length
                        let first = chunks[0].offset
                        if end / stride != first / stride {
                            let start = (end / stride - 1) * stride
                            FileSystem.startWriteback(descriptor: fd.rawValue, offset: Int64(start), count: Int64(stride))
                        }
                    }
                    guard finish else { return (fd, nil) }
                    let digest = hasher.finalize()
                    if digest == record.hash {
                        try FileSystem.setMode(descriptor: fd.rawValue, record.modeToInstall)
                        try FileSystem.setModificationTime(descriptor: fd.rawValue, record.mtime)
                    }
                    open = false  // closed even when close reports an error
                    try fd.close()
                    return (fd, digest)
                } catch {
                    guard open else { throw error }
                    let outOfRoom = Fetcher.OutOfRoom(error, part: fd, refused: UInt64(refused))
                    try? fd.close()
                    throw outOfRoom ?? error
                }
            }
        }, completion: { [self] result in
            transfer.writing = false
            releaseBuffered(sources)
            let givenUp = transfer.failed
            defer { if givenUp, closingWrites.remove(path) != nil { schedule() } }
            switch result {
            case .failure(let error):
                transfer.fd = nil
                if givenUp, !transfer.speculative {
                    // Reported and retried already; a retry's write says it again if the disk is at fault.
                    logger.info("a write to \(path) failed after its fetch was given up: \(error)")
                    return
                }
                if finishingSpeculations[transfer.record.path] === transfer { finishingSpeculations[transfer.record.path] = nil }
                transfer.failed = true
                transfer.stopFeed()
                dropPending(transfer)
                // The held file changed (or went) while its blocks were
                // copied: not this disk failing. Fetched whole next time.
                let heldChanged = error is HeldCopyError
                if let outOfRoom = error as? OutOfRoom { noteOutOfRoom(transfer, outOfRoom, holderAllocated: holderAllocated) }
                if heldChanged {
                    noteNotExtending(transfer.record)
                    if let held = transfer.blockSource { blockMemory.forget(held.hash) }
                }
                // This disk failed (full, most likely): a resume would not
                // help, the bytes are room the raft log needs, and the holder
                // need not send the rest.
                FileSystemCleanup.remove(path, on: loop)
                cancel(transfer)
                detach(transfer)
                if transfer.speculative {
                    logger.info("dropped the early copy of \(transfer.record.path): cannot write \(path): \(error)")
                    return
                }
                if heldChanged {
                    hooks.failed(transfer.record, "\(error); fetching it whole next time", false)
                } else {
                    hooks.failed(transfer.record, "cannot write \(path): \(error); the installed version stays in place", true)
                }
            case .success((let fd, nil)):
                transfer.fd = fd
                transfer.written += UInt64(bytes)
                transfer.feed?.wrote(to: transfer.written)
                // Given up while this write ran: nothing more will be written.
                if transfer.failed { closeFile(transfer) } else { queueWrite(transfer) }
            case .success((_, let digest?)):
                transfer.fd = nil
                if finishingSpeculations[transfer.record.path] === transfer { finishingSpeculations[transfer.record.path] = nil }
                if digest == transfer.record.hash || (transfer.speculative && !transfer.failed) {
                    transfer.feed?.wrote(to: transfer.record.size)  // complete: relays send the rest
                } else {
                    transfer.stopFeed()
                }
                if transfer.speculative, transfer.failed {
                    FileSystemCleanup.remove(path, on: loop)  // dropped while this write ran
                } else if transfer.speculative {
                    detach(transfer)
                    speculated[transfer.record.path] = Speculated(size: transfer.record.size, digest: digest,
                                                                  temporaryPath: path, finishedAt: loop.now)
                } else if digest == transfer.record.hash, record.version != transfer.record.version {
                    // Adopted after this last write was queued: the job
                    // checked the offer's hash, so mode and mtime are not set.
                    handOver(transfer.record, expected: transfer.expected, temporaryPath: path)
                } else if digest == transfer.record.hash {
                    if transfer.matchedBytes > 0 {
                        logger.info("fetched \(transfer.record.path): \(NodeStatus.bytes(transfer.matchedBytes)) of \(NodeStatus.bytes(transfer.record.size)) were the same as the version held here and copied from it")
                    }
                    if let digests = transfer.digestBuilder?.result {
                        blockMemory.remember(digests, for: transfer.record.hash)
                    }
                    failedAt[transfer.record.path] = nil
                    hooks.fetched(Fetched(record: transfer.record, expected: transfer.expected, temporaryPath: path))
                } else {
                    // Not what the index promised: start again from zero
                    // elsewhere, or, when blocks were copied from the held
                    // file (which may be the bad side), whole from any holder.
                    if let holder = transfer.holder, transfer.matchedBytes == 0 { noteFailure(transfer, at: holder) }
                    if transfer.copiedHeldBytes || transfer.matchedBytes > 0 { noteNotExtending(transfer.record) }
                    // The held file's bytes may not be the ones its hash names (an
                    // edit that kept its mtime): no digests are remembered for them.
                    if transfer.matchedBytes > 0, let held = transfer.blockSource { blockMemory.forget(held.hash) }
                    FileSystemCleanup.remove(path, on: loop)
                    hooks.failed(transfer.record, transfer.matchedBytes > 0
                                 ? "content does not match the index's SHA-256 (\(NodeStatus.bytes(transfer.matchedBytes)) copied from the version held here); fetching it whole next time"
                                 : "content from \(transfer.holder ?? "?") does not match the index's SHA-256", false)
                }
            }
            if transfer.holder == nil, !transfer.ended, !transfer.failed { schedule() }
        })
    }

    /// Files at least this large get progress lines in the log.
    static let progressLogBytes: UInt64 = 64 << 20

    private func logProgress(_ transfer: Transfer, from peer: NodeName) {
        guard transfer.record.size >= Fetcher.progressLogBytes else { return }
        let now = loop.now
        let first = transfer.lastLoggedAt == 0
        guard first || now - transfer.lastLoggedAt >= 5_000 || transfer.received == transfer.record.size else { return }
        transfer.lastLoggedAt = now
        let seconds = Double(max(now - transfer.startedAt, 1)) / 1000
        // Bytes resumed, copied from the held version or sent as `.zeros`
        // did not come over the network.
        let local = transfer.presentAtStart + transfer.matchedBytes + transfer.zeroBytes
        let rate = Double(transfer.received - min(local, transfer.received)) / seconds
        let percent = Double(transfer.received) * 100 / Double(transfer.record.size)
        logger.info("fetching \(transfer.record.path) from \(peer): \(Int(percent))% of \(NodeStatus.bytes(transfer.record.size)), \(NodeStatus.bytes(UInt64(rate)))/s")
    }

    /// Forgets bytes received for a failed transfer and not yet written:
    /// they were counted against the link's buffer, and a link left paused
    /// by them would never read again, for any transfer.
    private func dropPending(_ transfer: Transfer) {
        transfer.pending.removeAll()
        guard transfer.pendingBytes > 0 else { return }
        let sources = transfer.pendingSources
        transfer.pendingSources.removeAll()
        releaseBuffered(sources)
    }

    /// Bytes counted against links' buffers were written (or dropped): a
    /// link paused for them reads again once below the threshold.
    private func releaseBuffered(_ sources: [(link: Link, bytes: Int)]) {
        for (link, bytes) in sources {
            link.bufferedBytes -= bytes
            if link.paused, link.bufferedBytes < Fetcher.resumeBelowBufferedBytes {
                link.paused = false
                link.channel.connection.resumeReading()
            }
        }
    }

    /// Tells the holder to stop sending `transfer` (it failed here).
    private func cancel(_ transfer: Transfer) {
        guard let holder = transfer.holder, let link = links[holder], link.active[transfer.requestID] === transfer,
              let frame = try? Frame.encode(type: TransferMessage.FrameType.cancel.rawValue, {
                  TransferMessage.cancel(requestID: transfer.requestID).encodePayload(into: &$0)
              }) else { return }
        link.channel.send(frame)
    }

    private func detach(_ transfer: Transfer) {
        if let holder = transfer.holder { links[holder]?.active[transfer.requestID] = nil }
    }

    /// The holder cannot serve this: drop the transfer (its `.part` stays for
    /// a resume) and let the reconciler retry later, maybe from another holder.
    private func giveUp(_ transfer: Transfer, _ why: String) {
        if transfer.speculative { return dropSpeculation(transfer, why) }
        // Its retries (every second while the holder refuses, say while the
        // file keeps growing) do not copy the held bytes again.
        if transfer.copiedHeldBytes { noteNotExtending(transfer.record) }
        if transfer.writing { closingWrites.insert(transfer.temporaryPath) }
        transfer.failed = true
        transfer.stopFeed()
        dropPending(transfer)
        // A retry of this version resumes it; a retry of a newer one never will.
        mayHoldStalePartials = true
        closeFile(transfer)
        hooks.failed(transfer.record, why, false)
    }

    /// A fetch of the transfer's version failed at `peer`: this transfer
    /// and the retries of the version go to other holders first.
    private func noteFailure(_ transfer: Transfer, at peer: NodeName) {
        transfer.avoid.insert(peer)
        guard !transfer.speculative else { return }
        let path = transfer.record.path
        if failedAt[path]?.version != transfer.record.version {
            if failedAt[path] == nil, failedAt.count >= Fetcher.maxFailedPaths { failedAt.removeAll() }
            failedAt[path] = (transfer.record.version, [:])
        }
        failedAt[path]?.at[peer] = loop.now
    }

    func closeFile(_ transfer: Transfer) {
        guard let fd = transfer.fd, !transfer.writing else { return }
        transfer.fd = nil
        loop.queueWork({ try? fd.close() }, completion: { _ in })
    }

    // MARK: offered files (speculation)

    /// What a node does with an offered file (`Hooks.answerOffer`).
    enum OfferAnswer {
        /// Copy it now, as version 0, from the node that offered it.
        case copy
        case decline
        /// Not copied: this node holds `LocalFile`, a version whose block
        /// digests the fetch will send (`hashAhead`).
        case hashHeld(LocalFile)
    }

    /// An offered file is copied at once, as version 0, from the node that
    /// offered it, while that node is still hashing it for its announcement.
    /// When the record commits, a copy whose SHA-256 matches is installed
    /// like any fetched file (`adoptSpeculation`); any other copy is dropped.
    private func speculate(_ offer: FileOffer, from link: Link) {
        guard offer.size >= Fetcher.speculationMinimumSize, IndexPath.violation(in: offer.path) == nil,
              speculated[offer.path] == nil, !isFetching(offer.path) else { return }
        switch hooks.answerOffer(offer) {
        case .copy: break
        case .decline: return
        case .hashHeld(let held): return hashAhead(offer.path, held)  // reads here: no room on the link needed
        }
        let name = Fetcher.offeredName(Fetcher.pathDigest(offer.path), size: offer.size)
        if leftovers.contains(name) {
            // An early copy of this file cut off by a restart: the fetch of
            // its announcement resumes it (`fetch`). A new copy would start
            // again from nothing over those bytes.
            logger.debug("not copying \(offer.path) early: the copy cut off by the restart resumes once it is announced")
            leftoverOffers[name] = loop.now
            return
        }
        guard link.channel.isReady, link.active.count < Fetcher.maxRequestsPerChannel else { return }
        let record = FileRecord(path: offer.path, version: 0, kind: .file, size: offer.size, mode: 0o600,
                                mtime: offer.mtime, origin: link.peer, holders: [link.peer])
        let transfer = Transfer(record: record, expected: nil, temporaryPath: temporaryDirectory + "/" + name)
        transfer.speculative = true
        transfer.startedAt = loop.now
        if start(transfer) {
            logger.debug("copying \(offer.path) from \(link.peer) before its announcement")
        }
    }

    /// 16 hex digits of the SHA-256 of `path`: in every `.part` name, so
    /// files with the same content committed together never share one.
    static func pathDigest(_ path: String) -> Substring {
        SHA256.hex(SHA256.hash(Array(path.utf8))).prefix(16)
    }

    /// The `.part` of an early copy of the file of `size` bytes at the path
    /// of `pathDigest` (kept under that name once adopted, so that a restart
    /// resumes it for a record of that size).
    static func offeredName(_ pathDigest: Substring, size: UInt64) -> String {
        "offered-\(pathDigest)-\(size).part"
    }

    private func isFetching(_ path: String) -> Bool {
        waiting.contains { $0.record.path == path } || preparing.values.contains { $0.record.path == path }
            || links.values.contains { $0.active.values.contains { $0.record.path == path } }
    }

    /// Turns a copy of an offered file into the fetch of `record`, when
    /// `record` announces the same file: true when it did.
    private func adoptSpeculation(_ record: FileRecord, expected: LocalFile?) -> Bool {
        if let done = speculated.removeValue(forKey: record.path) {
            guard record.kind == .file, done.size == record.size, done.digest == record.hash else {
                logger.info("dropped the early copy of \(record.path): the announced version differs")
                FileSystemCleanup.remove(done.temporaryPath, on: loop)
                return false
            }
            logger.info("\(record.path) was copied before its announcement (\(NodeStatus.bytes(record.size)))")
            handOver(record, expected: expected, temporaryPath: done.temporaryPath)
            return true
        }
        for link in links.values {
            guard let transfer = link.active.values.first(where: { $0.speculative && $0.record.path == record.path }) else {
                continue
            }
            guard record.kind == .file, transfer.record.size == record.size else {
                cancel(transfer)
                dropSpeculation(transfer, "the announced version differs")
                return false
            }
            logger.info("\(record.path) announced while being copied: \(NodeStatus.bytes(transfer.received)) of \(NodeStatus.bytes(record.size)) already here")
            transfer.record = record
            transfer.expected = expected
            transfer.speculative = false
            return true
        }
        return false
    }

    /// Drops any early copy of `path`: its record is installed another way
    /// (from bytes this node holds).
    func abandonSpeculation(_ path: String) {
        if let done = speculated.removeValue(forKey: path) {
            FileSystemCleanup.remove(done.temporaryPath, on: loop)
        }
        // One whose last write is running now is dropped when it returns.
        if let finishing = finishingSpeculations[path], finishing.speculative { finishing.failed = true }
        for link in links.values {
            for transfer in link.active.values where transfer.speculative && transfer.record.path == path {
                cancel(transfer)
                dropSpeculation(transfer, "its bytes are here already")
            }
        }
    }

    /// Sets `record`'s mode and mtime on a verified copy, then hands it on.
    private func handOver(_ record: FileRecord, expected: LocalFile?, temporaryPath: String) {
        loop.queueWork({ () -> Result<Void, Error> in
            Result {
                // Read-only is enough for the owner to set both, and the copy
                // may already have the record's mode (0444, say).
                let fd = try FileDescriptor.open(temporaryPath, .readOnly)
                try fd.closeAfter {
                    try FileSystem.setMode(descriptor: fd.rawValue, record.modeToInstall)
                    try FileSystem.setModificationTime(descriptor: fd.rawValue, record.mtime)
                }
            }
        }, completion: { [self] result in
            switch result {
            case .success:
                hooks.fetched(Fetched(record: record, expected: expected, temporaryPath: temporaryPath))
            case .failure(let error):
                FileSystemCleanup.remove(temporaryPath, on: loop)
                hooks.failed(record, "cannot prepare \(temporaryPath): \(error)", true)
            }
        })
    }

    /// Forgets a copy of an offered file (its holder refused or vanished,
    /// the file changed, or the copy failed): nobody waits for it.
    private func dropSpeculation(_ transfer: Transfer, _ why: String) {
        logger.debug("dropped the early copy of \(transfer.record.path): \(why)")
        transfer.failed = true
        transfer.stopFeed()
        dropPending(transfer)
        detach(transfer)
        closeFile(transfer)
        FileSystemCleanup.remove(transfer.temporaryPath, on: loop)
    }

    /// Drops complete copies whose announcement never came.
    /// Drops the early copies not announced within `speculationLifetime`,
    /// and those whose bytes (path, size, SHA-256) are announced and held
    /// here already (`heldHere`: no fetch will adopt them).
    func expireSpeculations(heldHere: (_ path: String, _ size: UInt64, _ digest: [UInt8]) -> Bool = { _, _, _ in false }) {
        let now = loop.now
        for (path, done) in speculated {
            let expired = now >= done.finishedAt + Fetcher.speculationLifetime
            guard expired || heldHere(path, done.size, done.digest) else { continue }
            speculated[path] = nil
            FileSystemCleanup.remove(done.temporaryPath, on: loop)
            let why = expired ? "not announced within \(Fetcher.speculationLifetime / 1000) s" : "the version announced is here already"
            logger.info("dropped the early copy of \(path): \(why)")
        }
    }

    /// Temporary files that belong to copies of offered files (the sweep of
    /// stale partial files must leave them).
    var speculativeFiles: Set<String> {
        let name = { (path: String) in String(path.split(separator: "/").last ?? "") }
        var names = Set(speculated.values.map { name($0.temporaryPath) })
        for link in links.values {
            for transfer in link.active.values where transfer.speculative {
                names.insert(name(transfer.temporaryPath))
            }
        }
        return names
    }
}

/// Removes a file on the thread pool, ignoring errors (temporary files).
enum FileSystemCleanup {
    static func remove(_ path: String, on loop: EventLoop) {
        loop.queueWork({ _ = try? FileDescriptor.removeIfPresent(path) }, completion: { _ in })
    }
}

/// A file this node is receiving, as its server relays it to a peer that
/// a holder sent here. The fetcher reports each chunk as it arrives and
/// each write as it lands, and fails the feed when its transfer stops. The
/// chunks that arrived last (a few MiB) are kept in memory while a relay
/// watches, so a relay that follows closely sends them at once, neither
/// waiting for this node's disk nor reading them back from it (large files
/// are written around the page cache); a relay further behind reads the
/// temporary file, up to what is written. Loop thread only.
final class RelayFeed {
    let size: UInt64
    let temporaryPath: String
    /// What the file takes on its holder's disk, once the holder said
    /// (`FetchHeader.allocated`): passed on to the relay's fetchers.
    var allocated: UInt64?
    /// Bytes received in order so far (may be sent), and bytes in the file.
    private(set) var available: UInt64
    private(set) var written: UInt64
    private(set) var failed = false
    private var observers: [ObjectIdentifier: () -> Void] = [:]
    private var recent: Deque<(offset: UInt64, bytes: ArraySlice<UInt8>)> = []
    private var recentBytes = 0
    /// Runs of `.zeros` that arrived, the latest `recentZeroRuns`, kept
    /// while a relay watches: passed on as `.zeros` at once, not read back
    /// from the file once written (where they are holes).
    private var zeroRuns: Deque<(offset: UInt64, length: UInt64)> = []
    static let recentZeroRuns = 64
    /// Bytes of recent chunks kept for relays, per feed and in all feeds
    /// of this process (beyond that, relays read the file).
    static let recentLimit = 8 << 20
    static let totalRecentLimit = 16 << 20
    private static var totalRecent = 0

    init(size: UInt64, temporaryPath: String, written: UInt64, arrived: UInt64) {
        self.size = size
        self.temporaryPath = temporaryPath
        self.written = min(written, size)
        available = min(max(arrived, written), size)
    }

    /// A chunk arrived (in order): kept while a relay watches.
    func arrived(offset: UInt64, bytes: ArraySlice<UInt8>) {
        guard !failed, !bytes.isEmpty else { return }
        if !observers.isEmpty {
            recent.append((offset, bytes))
            recentBytes += bytes.count
            RelayFeed.totalRecent += bytes.count
            while recentBytes > RelayFeed.recentLimit || RelayFeed.totalRecent > RelayFeed.totalRecentLimit,
                  let first = recent.popFirst() {
                recentBytes -= first.bytes.count
                RelayFeed.totalRecent -= first.bytes.count
            }
        }
        advance(from: offset, to: offset + UInt64(bytes.count))
    }

    /// A run of zeros arrived (in order, as `.zeros`): kept while a relay watches.
    func arrivedZeros(offset: UInt64, length: UInt64) {
        guard !failed, length > 0 else { return }
        if !observers.isEmpty {
            zeroRuns.append((offset, length))
            if zeroRuns.count > RelayFeed.recentZeroRuns { zeroRuns.removeFirst() }
        }
        advance(from: offset, to: offset + length)
    }

    /// Bytes `offset..<end` arrived: what may be relayed grows if they
    /// follow on from it.
    private func advance(from offset: UInt64, to end: UInt64) {
        let end = min(end, size)
        if offset <= available, end > available {
            available = end
            notify()
        }
    }

    /// Where the first recent run of `.zeros` after `offset` starts, if
    /// one does: bytes up to there may be in memory, the run is not.
    func zerosStart(after offset: UInt64) -> UInt64? {
        zeroRuns.first { $0.offset > offset }?.offset
    }

    /// How many bytes from `offset` are known zeros (a recent run of
    /// `.zeros`, up to what arrived), or nil.
    func zeros(at offset: UInt64) -> UInt64? {
        guard let run = zeroRuns.last(where: { $0.offset <= offset }), offset < run.offset + run.length else { return nil }
        let end = min(run.offset + run.length, available)
        return end > offset ? end - offset : nil
    }

    /// The file holds the first `bytes` bytes.
    func wrote(to bytes: UInt64) {
        guard !failed, bytes > written else { return }
        written = min(bytes, size)
        available = max(available, written)
        notify()
    }

    func fail() {
        guard !failed else { return }
        failed = true
        forgetRecent()
        notify()
    }

    private func forgetRecent() {
        RelayFeed.totalRecent -= recentBytes
        recent.removeAll()
        recentBytes = 0
        zeroRuns.removeAll()
    }

    deinit { RelayFeed.totalRecent -= recentBytes }

    /// Bytes `offset..<offset+count` from the recent chunks, if all of them
    /// are there; nil sends the reader to the file. A range within one chunk
    /// (a relay reading in step with what arrives) is that chunk's memory,
    /// not a copy.
    func cached(offset: UInt64, count: Int) -> ArraySlice<UInt8>? {
        let end = offset + UInt64(count)
        guard count > 0, end <= available, let first = recent.first, first.offset <= offset else { return nil }
        if let chunk = recent.last(where: { $0.offset <= offset }),
           chunk.offset + UInt64(chunk.bytes.count) >= end {
            let from = chunk.bytes.startIndex + Int(offset - chunk.offset)
            return chunk.bytes[from..<(from + count)]
        }
        var out: [UInt8] = []
        out.reserveCapacity(count)
        var want = offset
        for chunk in recent {
            let chunkEnd = chunk.offset + UInt64(chunk.bytes.count)
            guard chunkEnd > want else { continue }
            guard chunk.offset <= want else { return nil }
            let from = chunk.bytes.startIndex + Int(want - chunk.offset)
            let to = chunk.bytes.startIndex + Int(min(end, chunkEnd) - chunk.offset)
            out.append(contentsOf: chunk.bytes[from..<to])
            want = min(end, chunkEnd)
            if want == end { return out[...] }
        }
        return nil
    }

    /// Calls `body` after every advance and at the failure, until removed.
    func observe(_ owner: AnyObject, _ body: @escaping () -> Void) {
        observers[ObjectIdentifier(owner)] = body
    }

    func stopObserving(_ owner: AnyObject) {
        observers[ObjectIdentifier(owner)] = nil
        if observers.isEmpty { forgetRecent() }
    }

    private func notify() {
        for body in Array(observers.values) { body() }
    }
}
