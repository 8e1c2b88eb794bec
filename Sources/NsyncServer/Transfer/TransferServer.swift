import Collections
import Logging

/// Serves file bytes to peers on the file-server port: requests arrive
/// pipelined on each channel and are answered in order; the next few are
/// opened (and, when small, read whole) on the thread pool while the head
/// one is sent, and a large file streams in chunks with one read ahead, so
/// memory per channel stays bounded whatever the file sizes. Loop thread only.
final class TransferServer {
    /// Says whether `version` of `path` may be served now.
    typealias Resolver = (_ path: String, _ version: UInt64) -> Resolution

    enum Resolution {
        /// Serve it: this node holds it, with this size.
        case serve(size: UInt64)
        /// This node has not applied that version yet (a leader may ask
        /// before followers learn the commit): ask again after the next apply.
        case notYet
        /// This node is receiving that version: relay it as it arrives.
        case relay(RelayFeed)
        case refuse(Refusal)
    }

    /// Files at least this large are relayed: a holder serving one sends the
    /// next receiver that asks to the receiver it already serves, and so on
    /// (a chain), so the file leaves its origin once whatever the number of
    /// receivers. Smaller files go straight from a holder.
    static let relayMinimumSize: UInt64 = 16 << 20

    /// One file being served straight from here, and the receivers sent
    /// along the chain behind it, in order.
    struct Chain {
        let session: ObjectIdentifier
        var members: [NodeName]
    }

    struct FileKey: Hashable {
        let path: String
        let version: UInt64
    }

    /// Chains of the large files this node is sending, by path and version.
    private var chains: [FileKey: Chain] = [:]

    /// What a holder does with a request for a large file.
    enum ChainDecision {
        /// Serve it from here; the request starts the file's chain.
        case start
        /// Serve it from here, outside any chain (the chain is this session's already).
        case serve
        /// Send the requester to this node, the chain's last receiver.
        case redirect(NodeName)
    }

    struct Refusal: Error {
        var status: FetchStatus
        var message: String
    }

    /// Requests opened ahead of the one being sent, per channel.
    static let prepareWindow = 8

    private let loop: EventLoop
    private let root: String
    private let chunkSize: Int
    private let resolve: Resolver
    private let logger: Logger
    private var sessions: [ObjectIdentifier: Session] = [:]
    /// Bytes sent to peers since start (status, benchmarks).
    private(set) var bytesServed: UInt64 = 0

    init(loop: EventLoop, root: String, chunkSize: Int, logger: Logger, resolve: @escaping Resolver) {
        self.loop = loop
        self.root = root
        self.chunkSize = chunkSize
        self.logger = logger
        self.resolve = resolve
    }

    var sessionCount: Int { sessions.count }

    /// Files being sent now (for status): path, peer, bytes sent and to
    /// send, and whether it is relayed as it arrives here.
    var activeStreams: [(path: String, to: NodeName, done: UInt64, total: UInt64, relayed: Bool)] {
        sessions.values.compactMap { session in
            guard let s = session.currentStream else { return nil }
            return (s.item.request.path, session.channel.peerName ?? "?", s.next, s.end, s.item.feed != nil)
        }
    }

    /// Takes over an accepted file channel (before `start()`).
    func accept(_ channel: Channel) {
        let session = Session(server: self, channel: channel)
        let key = ObjectIdentifier(channel)
        sessions[key] = session
        channel.onFrame = { [unowned self, unowned session] frame in
            var payload = frame.payload
            do {
                switch try TransferMessage.decode(type: frame.type, payload: &payload) {
                case .request(let request): session.enqueue(request)
                case .cancel(let id): session.cancel(id)
                default: throw WireError.malformed("unexpected message type \(frame.type) from a fetcher")
                }
            } catch {
                logger.warning("closing file channel: \(error)", metadata: ["peer": "\(channel.peerName ?? "?")"])
                channel.close()
            }
        }
        channel.onWritable = { [unowned session] in session.pump() }
        channel.onClose = { [weak self] _ in
            guard let self else { return }
            sessions.removeValue(forKey: key)?.abandon()
        }
    }

    /// A fetcher may ask for a version before this node applied it: this many
    /// ms of waiting for the index to catch up before refusing.
    static let maxWaitForIndex: UInt64 = 5_000

    /// The node applied entries: serve requests that waited for them.
    func indexAdvanced() {
        for session in sessions.values { session.indexAdvanced() }
    }

    /// Where `requester` should fetch a large file: from here when this node
    /// is not sending it to anyone yet (the request starts its chain), else
    /// from the last receiver of its chain (which relays it). `session` is
    /// the requester's.
    fileprivate func chainDecision(_ key: FileKey, for requester: NodeName, session: ObjectIdentifier) -> ChainDecision {
        guard var chain = chains[key] else {
            chains[key] = Chain(session: session, members: [requester])
            return .start
        }
        guard chain.session != session, !chain.members.contains(requester), let last = chain.members.last else { return .serve }
        chain.members.append(requester)
        chains[key] = chain
        logger.debug("sending \(requester) to \(last) for \(key.path) (version \(key.version)): a chain of \(chain.members.count)")
        return .redirect(last)
    }

    /// The request that started a chain is over (sent, failed or gone):
    /// later receivers are served from here again.
    fileprivate func endChain(_ key: FileKey, session: ObjectIdentifier) {
        if chains[key]?.session == session { chains[key] = nil }
    }

    /// Tells every fetcher connected here about `offer`.
    func broadcast(_ offer: FileOffer) {
        // Not to a channel still in its handshake: nothing may go before the Hello.
        for session in sessions.values where session.channel.isReady { session.send(.offer(offer)) }
    }

    /// Closes every serving channel.
    func closeAll() {
        for session in sessions.values { session.channel.close() }
    }

    // MARK: one channel

    /// The requests of one channel, answered in order. Loop thread only.
    final class Session {
        unowned let server: TransferServer
        let channel: Channel
        private var items: Deque<Item> = []
        private var preparing = 0
        private var streaming: Stream?
        var currentStream: Stream? { streaming }
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
            /// The chain this request started (a large file served from here).
            var chain: FileKey?
            /// What a relayed request reads from.
            var feed: RelayFeed?
            /// When the first `.notYet` came (loop ms).
            var waitingSince: UInt64?
            init(_ request: FetchRequest) { self.request = request }

            enum State {
                case queued, preparing
                case refused(Refusal)
                /// Small enough to have been read whole.
                case whole([UInt8])
                /// Open, to be streamed in chunks.
                case open(FileDescriptor, size: UInt64)
                /// A relay waiting for the first bytes of the file it relays.
                case awaitingRelay
            }
        }

        /// A large file being sent chunk by chunk.
        struct Stream {
            let item: Item
            let fd: FileDescriptor
            var next: UInt64
            let end: UInt64
            var readAhead: [UInt8]?
            var reading = false
            /// Bytes that may be sent now: all of them, or, for a relay, what
            /// its transfer has received so far.
            var readable: UInt64 { item.feed.map { min($0.available, end) } ?? end }
        }

        func enqueue(_ request: FetchRequest) {
            guard items.count < 4096 else {
                server.logger.warning("peer queued over 4096 fetch requests; closing its channel")
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
            // The one being streamed has left `items` already.
            if let s = streaming, s.item.request.requestID == id { s.item.cancelled = true }
            pump()
        }

        /// The channel closed: release open files once their jobs return.
        func abandon() {
            abandoned = true
            waitTimer?.close()
            waitTimer = nil
            if let s = streaming {
                try? s.fd.close()
                finished(s.item)
            }
            streaming = nil
            for item in items {
                if case .open(let fd, _) = item.state { try? fd.close() }
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

        private func prepareMore() {
            for item in items where preparing < TransferServer.prepareWindow {
                guard case .queued = item.state else { continue }
                prepare(item)
            }
        }

        private func prepare(_ item: Item) {
            let request = item.request
            if let violation = IndexPath.violation(in: request.path) {
                item.state = .refused(Refusal(status: .invalidPath, message: "\(violation)"))
                return
            }
            let expected: UInt64
            switch server.resolve(request.path, request.version) {
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
            case .relay(let feed):
                server.logger.debug("relaying \(request.path) (version \(request.version)) to \(channel.peerName ?? "?") as it arrives: \(feed.available) of \(feed.size) bytes here")
                item.feed = feed
                item.state = .awaitingRelay
                feed.observe(item) { [weak self, weak item] in
                    guard let self, let item else { return }
                    if case .awaitingRelay = item.state { openRelay(item) } else { pump() }
                }
                openRelay(item)
                return
            case .serve(let size):
                expected = size
            }
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
            let wholeLimit = UInt64(server.chunkSize)
            prepareOnPool(item) {
                do {
                    let fd = try FileSystem.openBeneath(root: root, path: request.path)
                    let status = try FileSystem.status(descriptor: fd.rawValue, path: request.path)
                    guard status.kind == .regular, UInt64(status.size) == expected else {
                        try? fd.close()
                        return .refused(Refusal(status: .versionNotHeld, message: "changed on disk since it was announced"))
                    }
                    guard expected > wholeLimit || request.offset > 0 || request.length != .max else {
                        return .whole(try fd.closeAfter { try fd.read(upToCount: Int(expected), at: 0) })
                    }
                    return .open(fd, size: expected)
                } catch {
                    return .refused(Refusal(status: .readError, message: "\(error)"))
                }
            }
        }

        /// Runs `job` (opening, maybe reading the file) on the thread pool as
        /// `item`'s preparation, then sends what is ready.
        private func prepareOnPool(_ item: Item, _ job: @escaping @Sendable () -> Item.State) {
            item.state = .preparing
            preparing += 1
            server.loop.queueWork(job, completion: { [self] state in
                preparing -= 1
                if abandoned {
                    if case .open(let fd, _) = state { try? fd.close() }
                    return
                }
                item.state = state
                pump()
                prepareMore()
            })
        }

        /// Whether a request for a file of `size` may be sent along a chain:
        /// large, from the start, and not already redirected once.
        private func mayRedirect(_ request: FetchRequest, size: UInt64) -> Bool {
            size >= TransferServer.relayMinimumSize && request.offset == 0 && !request.noRedirect
                && request.length == .max
        }

        /// Opens the file a relay reads once its first bytes are written
        /// (or refuses the request if its transfer stopped first).
        private func openRelay(_ item: Item) {
            guard case .awaitingRelay = item.state, let feed = item.feed else { return }
            if feed.failed {
                item.state = .refused(Refusal(status: .versionNotHeld, message: "the transfer it would be relayed from stopped"))
                pump()
                return
            }
            guard feed.written > 0 else { return }  // the file exists once its first write landed
            let path = feed.temporaryPath
            let size = feed.size
            prepareOnPool(item) {
                do {
                    return .open(try FileDescriptor.open(path, .readOnly), size: size)
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

        /// Sends what is ready, in request order, while the channel takes it.
        func pump() {
            while !abandoned, channel.isWritable {
                if streaming != nil {
                    guard sendNextChunk() else { return }
                    continue
                }
                guard let head = items.first else { return }
                let id = head.request.requestID
                if head.cancelled {
                    if case .open(let fd, _) = head.state { try? fd.close() }
                    if case .preparing = head.state { return }
                    items.removeFirst()
                    finished(head)
                    continue
                }
                switch head.state {
                case .queued, .preparing, .awaitingRelay:
                    return
                case .refused(let refusal):
                    items.removeFirst()
                    finished(head)
                    send(.header(FetchHeader(requestID: id, status: refusal.status, message: refusal.message)))
                case .whole(let bytes):
                    items.removeFirst()
                    finished(head)
                    send(.header(FetchHeader(requestID: id, status: .ok, size: UInt64(bytes.count))))
                    if !bytes.isEmpty { sendData(id: id, offset: 0, bytes) }
                    send(.end(requestID: id))
                    server.bytesServed += UInt64(bytes.count)
                case .open(let fd, let size):
                    items.removeFirst()
                    let start = min(head.request.offset, size)
                    let length = head.request.length == .max ? size - start : min(head.request.length, size - start)
                    send(.header(FetchHeader(requestID: id, status: .ok, size: size)))
                    streaming = Stream(item: head, fd: fd, next: start, end: start + length)
                    readAhead()
                }
                prepareMore()
            }
        }

        /// Sends the chunk read ahead, if there is one; false when waiting for a read.
        private func sendNextChunk() -> Bool {
            guard var s = streaming else { return true }
            // A relay whose transfer stopped sends what it holds in hand, then ends.
            let relayStopped = s.item.feed?.failed == true && s.readAhead == nil
            if s.item.cancelled || s.next >= s.end || relayStopped {
                if s.reading { return false }
                try? s.fd.close()
                streaming = nil
                finished(s.item)
                // A relay whose transfer stopped ends short: the fetcher
                // resumes from what it has, at a holder.
                if !s.item.cancelled { send(.end(requestID: s.item.request.requestID)) }
                return true
            }
            guard let chunk = s.readAhead else {
                readAhead()
                // Filled at once from a relay's memory: go on sending.
                return streaming?.readAhead != nil
            }
            s.readAhead = nil
            let offset = s.next
            s.next += UInt64(chunk.count)
            streaming = s
            readAhead()
            sendData(id: s.item.request.requestID, offset: offset, chunk)
            server.bytesServed += UInt64(chunk.count)
            return true
        }

        /// Reads the next chunk on the pool, unless one is read or being read.
        private func readAhead() {
            guard var s = streaming, !s.reading, s.readAhead == nil else { return }
            let offset = s.next
            // A relay waits here for its transfer to write more (its feed's
            // observer pumps again).
            guard offset < s.readable else { return }
            var count = Int(min(UInt64(server.chunkSize), s.readable - offset))
            if let feed = s.item.feed {
                // Its transfer stopped: nothing more is read (sendNextChunk ends it).
                guard !feed.failed else { return }
                if let cached = feed.cached(offset: offset, count: count) {
                    // Relayed from memory: just arrived, still there.
                    s.readAhead = cached
                    streaming = s
                    return
                }
                // Further behind: from the file, once written there.
                guard offset < feed.written else { return }
                count = Int(min(UInt64(count), feed.written - offset))
            }
            s.reading = true
            streaming = s
            let fd = s.fd
            server.loop.queueWork({ () -> Result<[UInt8], Error> in
                Result { try fd.read(upToCount: count, at: Int64(offset)) }
            }, completion: { [self] result in
                guard !abandoned, var s = streaming else { return }
                s.reading = false
                switch result {
                case .success(let bytes) where bytes.count == count:
                    s.readAhead = bytes
                    streaming = s
                    pump()
                case .success where s.item.request.version == 0:
                    // An offered file still changing: its copy would not
                    // match the hash anyway. End it, keep the channel.
                    try? s.fd.close()
                    streaming = nil
                    finished(s.item)
                    send(.end(requestID: s.item.request.requestID))
                    pump()
                case .success:
                    fail(s, "file shrank while being sent")
                case .failure(let error):
                    fail(s, "read failed: \(error)")
                }
            })
        }

        private func fail(_ s: Stream, _ why: String) {
            // The header already said ok: the fetcher can only learn of this
            // by the channel closing; it resumes from another holder.
            server.logger.warning("stopped serving \(s.item.request.path): \(why)")
            try? s.fd.close()
            streaming = nil
            finished(s.item)
            channel.close()
        }

        func send(_ message: TransferMessage) {
            guard let frame = try? Frame.encode(type: message.frameType.rawValue, { message.encodePayload(into: &$0) }) else { return }
            channel.send(frame)
        }

        private func sendData(id: UInt32, offset: UInt64, _ bytes: [UInt8]) {
            var prefix = ByteBuffer(capacity: TransferMessage.dataPrefixSize)
            prefix.writeInteger(id)
            prefix.writeInteger(offset)
            bytes.withUnsafeBytes { raw in
                _ = channel.send(type: TransferMessage.FrameType.data.rawValue, prefix: prefix, body: raw)
            }
        }
    }
}
