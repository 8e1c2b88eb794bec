import Collections
import Logging

extension TransferServer {
    /// The requests of one file channel. A few at a time are prepared on the
    /// pool (opened, small files read whole); each is answered once it is
    /// ready, not in arrival order, and up to `maxStreams` large files are
    /// streamed a chunk each in turn, alternating with the small answers. So
    /// an edit is not held up behind a huge file, nor behind a relay whose
    /// source is slow. Loop thread only.
    final class Session {
        unowned let server: TransferServer
        let channel: Channel
        /// Requests not streamed yet, in arrival order.
        private var items: Deque<Item> = []
        /// Large files being sent, a chunk of each in turn.
        private(set) var streams: [Stream] = []
        private var nextStream = 0
        /// Whether a stream's chunk goes before the next ready answer (they alternate).
        private var streamTurn = false
        private var abandoned = false
        /// Wakes the session when a request waiting for the index has waited
        /// `maxWaitForIndex`: on an idle cluster no apply would ever wake it.
        private var waitTimer: LoopTimer?

        init(server: TransferServer, channel: Channel) {
            self.server = server
            self.channel = channel
        }

        /// One request and what preparing it found.
        final class Item {
            let request: FetchRequest
            var state: State = .queued
            var cancelled = false
            /// Answered as a stream (large, a range, or a relay), not whole.
            var streamed = false
            /// The chain this request started (a large file served from here).
            var chain: FileKey?
            /// What a relayed request reads from.
            var feed: RelayFeed?
            /// When the first `.notYet` came (loop ms).
            var waitingSince: UInt64?
            /// The SHA-256 of the version served, when known (not for an offered file).
            var hash: [UInt8]?
            init(_ request: FetchRequest) { self.request = request }

            enum State {
                case queued, preparing
                case refused(Refusal)
                /// Small enough to have been read whole.
                case whole([UInt8])
                /// Open, to be streamed in chunks; `allocated`: what the file
                /// takes on disk (`FetchHeader.allocated`).
                case open(FileDescriptor, size: UInt64, allocated: UInt64)
                /// A relay waiting for the first bytes of the file it relays.
                case awaitingRelay
            }

            /// Holds memory or a descriptor here until it is sent (counts
            /// against `prepareWindow`).
            var isHeld: Bool {
                switch state {
                case .preparing, .whole, .open, .awaitingRelay: true
                case .queued, .refused: false
                }
            }
        }

        /// A large file being sent chunk by chunk.
        final class Stream {
            let item: Item
            let fd: FileDescriptor
            /// Where it started (the request's offset, at most the file's size).
            let start: UInt64
            var next: UInt64
            let end: UInt64
            /// The fetcher's digests of the version it holds: blocks that
            /// match go as `.same`, not as bytes. Nil for a relay.
            let blocks: BlockDigests?
            /// This node's digests of the same blocks, once known
            /// (`TransferServer.knownBlocks`; looked up again each turn
            /// until then: they may come while the file is being sent):
            /// blocks whose digests agree are not read.
            var known: BlockDigests?
            var readAhead: ArraySlice<UInt8>?
            /// Bytes from `next` that go as one `.same`, unread (`known`).
            var sameAhead: UInt64 = 0
            /// Whether the file has holes (it takes less room than its
            /// size) and the fetcher takes `.zeros`: reads first ask where
            /// data is, and a hole goes as `.zeros` without being read.
            let sparse: Bool
            /// Bytes from `next` that go as one `.zeros`, unread (a hole).
            var zerosAhead: UInt64 = 0
            /// Bytes sent as `.same`, and of them those not read (`known`).
            var sameBytes: UInt64 = 0
            var unreadBytes: UInt64 = 0
            /// Since when (loop ms) it waits for `known` (`knownBlocksPending`).
            var knownAwaitedSince: UInt64?
            /// Whether `readAhead` is all zeros, for a fetcher that takes
            /// `.zeros` (checked on the pool, where it was read).
            var readAheadZeros = false
            /// Per block of `readAhead`, whether the fetcher holds it.
            var matches: [Bool] = []
            var reading = false
            /// Out of the session: its file is closed once no read is running.
            var retired = false
            /// Bytes that may be sent now: all of them, or, for a relay, what
            /// its transfer has received so far.
            var readable: UInt64 { item.feed.map { min($0.available, end) } ?? end }

            init(item: Item, fd: FileDescriptor, next: UInt64, end: UInt64, sparse: Bool = false) {
                self.item = item
                self.fd = fd
                start = next
                self.next = next
                self.end = end
                blocks = item.feed == nil ? item.request.blocks : nil
                // Not for a relay: its file is still being written.
                self.sparse = sparse && item.feed == nil && blocks == nil && item.request.takesZeros
            }
        }

        func enqueue(_ request: FetchRequest) {
            guard items.count < 4096 else {
                server.logger.warning("peer queued over 4096 fetch requests; closing its channel")
                channel.close()
                return
            }
            // Each may hold 256 KiB of digests; a fetcher sends at most 64 requests at once.
            if request.blocks != nil,
               items.lazy.filter({ $0.request.blocks != nil }).count + streams.lazy.filter({ $0.blocks != nil }).count
                >= TransferServer.maxRequestsWithBlocks {
                server.logger.warning("peer queued over \(TransferServer.maxRequestsWithBlocks) fetch requests with block digests; closing its channel")
                channel.close()
                return
            }
            server.logger.trace("fetch request", metadata: ["path": "\(request.path)", "version": "\(request.version)",
                                                       "peer": "\(channel.peerName ?? "?")"])
            items.append(Item(request))
            prepareMore()
            pump()
        }

        /// The node applied more entries: requests waiting for them may go now.
        func indexAdvanced() {
            prepareMore()
            pump()
        }

        func cancel(_ id: UInt32) {
            for item in items where item.request.requestID == id { item.cancelled = true }
            for s in streams where s.item.request.requestID == id { s.item.cancelled = true }
            pump()
        }

        /// The channel closed: release open files (once their jobs return).
        func abandon() {
            abandoned = true
            waitTimer?.close()
            waitTimer = nil
            for s in streams { retire(s) }
            streams.removeAll()
            for item in items {
                if case .open(let fd, _, _) = item.state { try? fd.close() }
                finished(item)
            }
            items.removeAll()
        }

        /// An item is done with (sent, refused, cancelled or abandoned):
        /// its chain ends and it stops watching a relay feed.
        private func finished(_ item: Item) {
            if let key = item.chain { server.endChain(key, session: ObjectIdentifier(self)) }
            item.chain = nil
            item.feed?.stopObserving(item)
        }

        /// Takes `s` out of the session; its file closes now, or when its read returns.
        private func retire(_ s: Stream) {
            s.retired = true
            if !s.reading { try? s.fd.close() }
            finished(s.item)
        }

        private func removeStream(_ s: Stream) {
            streams.removeAll { $0 === s }
            retire(s)
        }

        // MARK: preparing

        /// Prepares queued requests, in order, while fewer than
        /// `prepareWindow` are held here. A large one waits while enough
        /// streams are running or ready to run, so small requests behind a
        /// run of large ones are still prepared (and answered in between).
        private func prepareMore() {
            var held = 0
            var streamsAhead = streams.count
            for item in items where item.isHeld {
                held += 1
                if item.streamed { streamsAhead += 1 }
            }
            guard held < TransferServer.prepareWindow else { return }
            for item in items {
                guard held < TransferServer.prepareWindow else { return }
                guard case .queued = item.state, !item.cancelled else { continue }
                prepare(item, mayStream: streamsAhead < 2 * TransferServer.maxStreams)
                if item.isHeld {
                    held += 1
                    if item.streamed { streamsAhead += 1 }
                }
            }
        }

        private func prepare(_ item: Item, mayStream: Bool) {
            let request = item.request
            if let violation = IndexPath.violation(in: request.path) {
                item.state = .refused(Refusal(status: .invalidPath, message: "\(violation)"))
                return
            }
            let expected: UInt64
            let resolution = server.resolve(request.path, request.version)
            if case .notYet = resolution {} else { item.waitingSince = nil }
            switch resolution {
            case .refuse(let refusal):
                item.state = .refused(refusal)
                return
            case .notYet:
                if item.waitingSince == nil {
                    item.waitingSince = server.loop.now
                    scheduleWaitTimeout()
                }
                if server.loop.now - item.waitingSince! > TransferServer.maxWaitForIndex {
                    item.state = .refused(Refusal(status: .versionNotHeld, message: "version \(request.version) not applied here after \(TransferServer.maxWaitForIndex) ms"))
                }
                return
            case .relay where request.prefixDigest != nil:
                item.state = .refused(Refusal(status: .prefixDiffers, message: "relayed here, where a prefix cannot be checked"))
                return
            case .relay(let feed):
                guard mayStream else { return }
                server.logger.debug("relaying \(request.path) (version \(request.version)) to \(channel.peerName ?? "?") as it arrives: \(feed.available) of \(feed.size) bytes here")
                item.streamed = true
                item.feed = feed
                item.state = .awaitingRelay
                feed.observe(item) { [weak self, weak item] in
                    guard let self, let item else { return }
                    if case .awaitingRelay = item.state { openRelay(item) } else { pump() }
                }
                openRelay(item, pumping: false)  // prepareMore's caller pumps
                return
            case .serve(let size, let hash):
                expected = size
                item.hash = hash
            }
            let wholeLimit = UInt64(server.chunkSize)
            let streamed = expected > wholeLimit || request.offset > 0 || request.length != .max
            guard !streamed || mayStream else { return }
            item.streamed = streamed
            if mayRedirect(request, size: expected), let requester = channel.peerName {
                let key = FileKey(path: request.path, version: request.version)
                switch server.chainDecision(key, for: requester, session: ObjectIdentifier(self)) {
                case .redirect(let target):
                    item.state = .refused(Refusal(status: .redirect, message: target))
                    return
                case .start: item.chain = key
                case .serve: break
                }
            }
            let root = server.root
            prepareOnPool(item) {
                do {
                    let fd = try FileSystem.openBeneath(root: root, path: request.path)
                    let status = try FileSystem.status(descriptor: fd.rawValue, path: request.path)
                    guard status.kind == .regular, UInt64(status.size) == expected else {
                        try? fd.close()
                        return .refused(Refusal(status: .versionNotHeld, message: TransferServer.changedOnDisk))
                    }
                    if let digest = request.prefixDigest,
                       try request.offset > expected || FileSystem.hashPrefix(of: fd, count: request.offset) != digest {
                        try? fd.close()
                        return .refused(Refusal(status: .prefixDiffers, message: "bytes 0..<\(request.offset) differ from those the fetcher has"))
                    }
                    guard streamed else {
                        return .whole(try fd.closeAfter { try fd.read(upToCount: Int(expected), at: 0) })
                    }
                    let allocated = (try? FileSystem.allocatedBytes(descriptor: fd.rawValue)) ?? expected
                    return .open(fd, size: expected, allocated: allocated)
                } catch {
                    return .refused(Refusal(status: .readError, message: "\(error)"))
                }
            }
        }

        /// Runs `job` (opening, maybe reading the file) on the thread pool as
        /// `item`'s preparation, then sends what is ready.
        private func prepareOnPool(_ item: Item, _ job: @escaping @Sendable () -> Item.State) {
            item.state = .preparing
            server.loop.queueWork(job, completion: { [self] state in
                if abandoned {
                    if case .open(let fd, _, _) = state { try? fd.close() }
                    return
                }
                item.state = state
                if case .refused(let refusal) = state, item.request.version != 0,
                   refusal.status == .readError || refusal.message == TransferServer.changedOnDisk {
                    server.heldFileNotAsKnown(item.request.path)
                }
                pump()
                prepareMore()
            })
        }

        /// Whether a request for a file of `size` may be sent along a chain:
        /// large, from the start, and not already redirected once.
        private func mayRedirect(_ request: FetchRequest, size: UInt64) -> Bool {
            size >= TransferServer.relayMinimumSize && request.offset == 0 && !request.noRedirect
                && request.length == .max && request.blocks == nil
        }

        /// Opens the file a relay reads once its first bytes are written
        /// (or refuses the request if its transfer stopped first).
        private func openRelay(_ item: Item, pumping: Bool = true) {
            guard case .awaitingRelay = item.state, let feed = item.feed else { return }
            if feed.failed {
                item.state = .refused(Refusal(status: .versionNotHeld, message: "the transfer it would be relayed from stopped"))
                if pumping { pump() }
                return
            }
            guard feed.written > 0 else { return }  // the file exists once its first write landed
            let path = feed.temporaryPath
            let size = feed.size
            // Still arriving: what it will take on disk is what its holder said.
            let allocated = feed.allocated ?? size
            prepareOnPool(item) {
                do {
                    return .open(try FileDescriptor.open(path, .readOnly), size: size, allocated: allocated)
                } catch {
                    return .refused(Refusal(status: .versionNotHeld, message: "the file being received is gone: \(error)"))
                }
            }
        }

        private func scheduleWaitTimeout(after delay: UInt64 = TransferServer.maxWaitForIndex + 1) {
            guard waitTimer == nil else { return }
            waitTimer = server.loop.schedule(after: delay) { [weak self] in
                guard let self, !abandoned else { return }
                waitTimer = nil
                refuseOverdue()
                indexAdvanced()
                // Requests that began waiting later need their own wake-up.
                let since = items.compactMap { item -> UInt64? in
                    guard case .queued = item.state else { return nil }
                    return item.waitingSince
                }
                if let earliest = since.min() {
                    let due = earliest + TransferServer.maxWaitForIndex + 1
                    scheduleWaitTimeout(after: due > server.loop.now ? due - server.loop.now : 1)
                }
            }
        }

        /// Requests whose version this node has not applied `maxWaitForIndex`
        /// after they came are refused, also those the window keeps from
        /// being prepared (a refusal holds nothing); those now resolved stop waiting.
        private func refuseOverdue() {
            let now = server.loop.now
            for item in items {
                guard case .queued = item.state, let since = item.waitingSince,
                      now - min(since, now) > TransferServer.maxWaitForIndex else { continue }
                if case .notYet = server.resolve(item.request.path, item.request.version) {
                    item.state = .refused(Refusal(status: .versionNotHeld, message: "version \(item.request.version) not applied here after \(TransferServer.maxWaitForIndex) ms"))
                } else {
                    item.waitingSince = nil
                }
            }
        }

        // MARK: sending

        /// Sends while the channel takes it: ready answers and streams'
        /// chunks in turn.
        func pump() {
            while !abandoned, channel.isWritable {
                streamTurn.toggle()
                let sent = streamTurn ? (sendStreamChunk() || answerReady()) : (answerReady() || sendStreamChunk())
                guard sent else { return }
            }
        }

        /// Answers the first request that is ready (a refusal, a small file
        /// whole, the header of a large one when a stream is free), or drops
        /// a cancelled one; false if none is.
        private func answerReady() -> Bool {
            var index = items.startIndex
            while index < items.endIndex {
                let item = items[index]
                let id = item.request.requestID
                switch item.state {
                case .preparing:
                    index += 1
                    continue  // even if cancelled: its job returns first
                case .queued, .awaitingRelay:
                    guard item.cancelled else {
                        index += 1
                        continue
                    }
                case .refused(let refusal):
                    if !item.cancelled {
                        send(.header(FetchHeader(requestID: id, status: refusal.status, message: refusal.message)))
                    }
                case .whole(let bytes):
                    if !item.cancelled {
                        send(.header(FetchHeader(requestID: id, status: .ok, size: UInt64(bytes.count))))
                        if !bytes.isEmpty { sendData(id: id, offset: 0, bytes[...]) }
                        send(.end(requestID: id))
                        server.bytesServed += UInt64(bytes.count)
                    }
                case .open(let fd, let size, let allocated):
                    if item.cancelled {
                        try? fd.close()
                    } else {
                        guard streams.count < TransferServer.maxStreams else {
                            index += 1
                            continue
                        }
                        items.remove(at: index)
                        let start = min(item.request.offset, size)
                        let length = item.request.length == .max ? size - start : min(item.request.length, size - start)
                        send(.header(FetchHeader(requestID: id, status: .ok, size: size, allocated: allocated)))
                        let stream = Stream(item: item, fd: fd, next: start, end: start + length, sparse: allocated < size)
                        streams.append(stream)
                        readAhead(stream)
                        prepareMore()
                        return true
                    }
                }
                items.remove(at: index)
                finished(item)
                prepareMore()
                return true
            }
            return false
        }

        /// Sends one chunk of the next stream, in turn, that has one in hand,
        /// or ends one that is done; false if none can go now.
        private func sendStreamChunk() -> Bool {
            let count = streams.count
            for step in 0..<count {
                let i = (nextStream + step) % count
                if advance(streams[i]) {
                    // Next in turn: the one after, or the one that took this slot when it ended.
                    nextStream = streams.isEmpty ? 0 : (streams.count < count ? i : i + 1) % streams.count
                    return true
                }
            }
            return false
        }

        /// Sends `s`'s chunk read ahead, or ends it when it is done; false
        /// when it waits for a read (or for its relay to receive more).
        private func advance(_ s: Stream) -> Bool {
            // A relay whose transfer stopped sends what it holds in hand, then ends.
            let relayStopped = s.item.feed?.failed == true && s.readAhead == nil
            if s.item.cancelled || s.next >= s.end || relayStopped {
                // A cancelled stream leaves at once, even with a read running
                // (its file closes when the read returns): a read that hung
                // must not hold one of the session's stream slots for ever.
                if s.reading && !s.item.cancelled { return false }
                removeStream(s)
                // A relay whose transfer stopped ends short: the fetcher
                // resumes from what it has, at a holder.
                if !s.item.cancelled { send(.end(requestID: s.item.request.requestID)) }
                if s.blocks != nil, !s.item.cancelled {
                    let counts = "\(s.sameBytes) of \(s.end - s.start) bytes unchanged, \(s.unreadBytes) of them known by their digests and not read"
                    server.logger.debug("sent \(s.item.request.path) to \(channel.peerName ?? "?") by blocks: \(counts)")
                }
                prepareMore()
                return true
            }
            if s.readAhead == nil, s.sameAhead == 0, s.zerosAhead == 0 {
                readAhead(s)  // filled at once from a relay's memory or known digests
            }
            if s.zerosAhead > 0 {
                let offset = s.next
                let length = s.zerosAhead
                s.zerosAhead = 0
                s.next += length
                readAhead(s)
                send(.zeros(requestID: s.item.request.requestID, offset: offset, length: length))
                return true
            }
            if s.sameAhead > 0 {
                let offset = s.next
                let length = s.sameAhead
                s.sameAhead = 0
                s.next += length
                s.sameBytes += length
                s.unreadBytes += length
                readAhead(s)
                send(.same(requestID: s.item.request.requestID, offset: offset, length: length))
                return true
            }
            guard let chunk = s.readAhead else { return false }
            s.readAhead = nil
            let matches = s.matches
            s.matches = []
            let zeros = s.readAheadZeros
            s.readAheadZeros = false
            let offset = s.next
            s.next += UInt64(chunk.count)
            readAhead(s)
            if let blocks = s.blocks {
                // Also when nothing matched: a block may be larger than a frame may be.
                s.sameBytes += sendBlocks(chunk, at: offset, blockSize: Int(blocks.blockSize),
                                          matches: matches, of: s.item.request)
            } else {
                sendChunk(of: s.item.request, at: offset, chunk, zeros: zeros)
            }
            return true
        }

        /// Sends `chunk` (whole blocks from `offset`, the last maybe short)
        /// as runs: `.same` for blocks the fetcher holds (`matches`, one per
        /// block; missing ones do not match), data frames of at most a chunk
        /// each for the others. Returns the bytes sent as `.same`.
        private func sendBlocks(_ chunk: ArraySlice<UInt8>, at offset: UInt64, blockSize: Int, matches: [Bool],
                                of request: FetchRequest) -> UInt64 {
            let id = request.requestID
            func matching(_ at: Int) -> Bool { at / blockSize < matches.count && matches[at / blockSize] }
            let base = chunk.startIndex
            var start = 0
            var sameBytes: UInt64 = 0
            while start < chunk.count {
                let same = matching(start)
                var end = start
                while end < chunk.count, matching(end) == same { end = min(end + blockSize, chunk.count) }
                if same {
                    send(.same(requestID: id, offset: offset + UInt64(start), length: UInt64(end - start)))
                    sameBytes += UInt64(end - start)
                } else {
                    var from = start
                    while from < end {
                        let to = min(from + server.chunkSize, end)
                        // Changed blocks only: few, checked here.
                        let bytes = chunk[(base + from)..<(base + to)]
                        sendChunk(of: request, at: offset + UInt64(from), bytes, zeros: request.takesZeros && Zeros.are(bytes))
                        from = to
                    }
                }
                start = end
            }
            return sameBytes
        }

        /// Reads `s`'s next chunk on the pool, unless one is read or being read.
        private func readAhead(_ s: Stream) {
            guard !s.retired, !s.reading, s.readAhead == nil, s.sameAhead == 0, s.zerosAhead == 0 else { return }
            let offset = s.next
            // A relay waits here for its transfer to write more (its feed's
            // observer pumps again).
            guard offset < s.readable else { return }
            var count = Int(min(UInt64(server.chunkSize), s.readable - offset))
            if let blocks = s.blocks {
                // Whole blocks from a block boundary. A request resumed
                // inside a block (its channel closed in the middle of one)
                // first reads up to the next boundary, all sent as data.
                let size = Int(blocks.blockSize)
                let into = Int(offset % UInt64(size))
                count = Int(min(UInt64(into > 0 ? size - into : max(size, TransferServer.blockTurn / size * size)),
                                s.readable - offset))
                if s.known == nil, let hash = s.item.hash {
                    s.known = server.knownBlocks(hash, blocks.blockSize)
                    if s.known == nil, into == 0, server.knownBlocksPending(hash, blocks.blockSize) {
                        let now = server.loop.now
                        let since = s.knownAwaitedSince ?? now
                        if s.knownAwaitedSince == nil {
                            s.knownAwaitedSince = now
                            server.loop.schedule(after: server.maxWaitForKnownBlocks + 1) { [weak self] in self?.pump() }
                        }
                        if now - since <= server.maxWaitForKnownBlocks { return }
                    }
                }
                if into == 0, let known = s.known {
                    // Blocks whose digests agree go unread, as one `.same`;
                    // of the others, only they are read.
                    let run = Session.knownRun(from: offset, to: s.readable, theirs: blocks, ours: known)
                    if run.same {
                        s.sameAhead = run.length
                        return
                    }
                    count = Int(min(UInt64(count), run.length))
                }
            }
            if let feed = s.item.feed {
                // Its transfer stopped: nothing more is read (advance ends it).
                guard !feed.failed else { return }
                if s.item.request.takesZeros, let zeros = feed.zeros(at: offset) {
                    // Arrived as `.zeros`: passed on as such, unread.
                    s.zerosAhead = min(zeros, s.readable - offset, TransferServer.maxZerosRun)
                    return
                }
                // Bytes up to the next run of zeros, which memory may hold whole.
                if let zeros = feed.zerosStart(after: offset) { count = min(count, Int(zeros - offset)) }
                if let cached = feed.cached(offset: offset, count: count) {
                    // Relayed from memory: just arrived, still there.
                    s.readAhead = cached
                    return
                }
                // Further behind: from the file, once written there.
                guard offset < feed.written else { return }
                count = Int(min(UInt64(count), feed.written - offset))
            }
            s.reading = true
            let fd = s.fd
            let blocks = s.blocks
            let checkZeros = blocks == nil && s.item.request.takesZeros
            // A hole of a chunk or more goes unread, in one `.zeros` of up to this.
            let hole = s.sparse ? min(s.readable - offset, TransferServer.maxZerosRun) : 0
            server.loop.queueWork({ () -> Result<([UInt8], [Bool], Bool, UInt64), Error> in
                Result {
                    if hole > 0 {
                        // No data up to the end: a hole there, unless the file shrank (read, and fail, below).
                        let data = try fd.nextData(from: Int64(offset)).map { UInt64($0) }
                            ?? (try fd.size() >= Int64(offset + hole) ? .max : offset)
                        if data >= offset + UInt64(count) { return ([], [], true, min(data - offset, hole)) }
                    }
                    let bytes = try fd.read(upToCount: count, at: Int64(offset))
                    guard let blocks, bytes.count == count else { return (bytes, [], checkZeros && Zeros.are(bytes[...]), 0) }
                    return (bytes, Session.matches(bytes, at: offset, blocks), false, 0)
                }
            }, completion: { [self] result in
                s.reading = false
                guard !s.retired else {
                    try? s.fd.close()
                    return
                }
                switch result {
                case .success(let (_, _, _, hole)) where hole > 0:
                    s.zerosAhead = hole
                case .success(let (bytes, matches, zeros, _)) where bytes.count == count:
                    s.readAhead = bytes[...]
                    s.matches = matches
                    s.readAheadZeros = zeros
                case .success where s.item.request.version == 0:
                    // An offered file still changing: its copy would not
                    // match the hash anyway. End it, keep the channel.
                    removeStream(s)
                    send(.end(requestID: s.item.request.requestID))
                    prepareMore()
                case .success:
                    fail(s, "file shrank while being sent")
                    return
                case .failure(let error):
                    fail(s, "read failed: \(error)")
                    return
                }
                pump()
            })
        }

        /// For each block of `bytes` (read from `offset`), whether the
        /// fetcher's digest says it holds those very bytes; none when
        /// `offset` is not a block boundary. Thread pool.
        static func matches(_ bytes: [UInt8], at offset: UInt64, _ blocks: BlockDigests) -> [Bool] {
            let size = Int(blocks.blockSize)
            guard offset % UInt64(size) == 0 else { return [] }
            let first = Int(offset / UInt64(size))
            return bytes.withUnsafeBytes { raw in
                stride(from: 0, to: raw.count, by: size).map { start in
                    blocks.matches(UnsafeRawBufferPointer(rebasing: raw[start..<min(start + size, raw.count)]),
                                   block: first + start / size)
                }
            }
        }

        /// The blocks from `offset` (a block boundary) to `end` whose
        /// digests agree in `theirs` and `ours` as the first one's do, or
        /// disagree as it does: whether they agree, and their bytes (up
        /// to `end`, which may cut a block).
        static func knownRun(from offset: UInt64, to end: UInt64, theirs: BlockDigests,
                             ours: BlockDigests) -> (same: Bool, length: UInt64) {
            let size = UInt64(theirs.blockSize)
            var block = Int(offset / size)
            let same = theirs.sameBlock(block, as: ours)
            var at = offset
            while at < end, theirs.sameBlock(block, as: ours) == same {
                at = min(at + size, end)
                block += 1
            }
            return (same, at - offset)
        }

        private func fail(_ s: Stream, _ why: String) {
            // The header already said ok: the fetcher can only learn of this
            // by the channel closing; it resumes from another holder.
            server.logger.warning("stopped serving \(s.item.request.path): \(why)")
            removeStream(s)
            channel.close()
        }

        func send(_ message: TransferMessage) {
            guard let frame = try? Frame.encode(type: message.frameType.rawValue, { message.encodePayload(into: &$0) }) else { return }
            channel.send(frame)
        }

        /// Sends a chunk of a stream: as `.zeros` when it is all `zeros`
        /// and the fetcher takes them (a sparse file's hole: nothing to
        /// encrypt and carry), else as data.
        private func sendChunk(of request: FetchRequest, at offset: UInt64, _ bytes: ArraySlice<UInt8>, zeros: Bool) {
            if zeros, request.takesZeros, !bytes.isEmpty {
                send(.zeros(requestID: request.requestID, offset: offset, length: UInt64(bytes.count)))
            } else {
                sendData(id: request.requestID, offset: offset, bytes)
                server.bytesServed += UInt64(bytes.count)
            }
        }

        private func sendData(id: UInt32, offset: UInt64, _ bytes: ArraySlice<UInt8>) {
            var prefix = ByteBuffer(capacity: TransferMessage.dataPrefixSize)
            prefix.writeInteger(id)
            prefix.writeInteger(offset)
            bytes.withUnsafeBytes { raw in
                _ = channel.send(type: TransferMessage.FrameType.data.rawValue, prefix: prefix, body: raw)
            }
        }
    }
}
