import Collections
import Logging

/// Serves file bytes to peers on the file-server port: requests arrive
/// pipelined on each channel (`Session`), a few at a time are opened (and,
/// when small, read whole) on the thread pool, and answers interleave: a
/// small file is not held up behind a large one, which streams in chunks
/// with one read ahead, so memory per channel stays bounded whatever the
/// file sizes. Loop thread only.
final class TransferServer {
    /// Says whether `version` of `path` may be served now.
    typealias Resolver = (_ path: String, _ version: UInt64) -> Resolution

    enum Resolution {
        /// Serve it: this node holds it, with this size and (when known:
        /// not for an offered file) SHA-256.
        case serve(size: UInt64, hash: [UInt8]? = nil)
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
    /// The longest hole of a sparse file sent as one `.zeros`: what the
    /// fetcher writes and hashes of held or zero bytes in one job.
    static let maxZerosRun = Fetcher.maxHeldBytesPerWrite

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

    /// Requests of one channel being opened or read, or opened and waiting
    /// to be sent, at a time: bounds the memory (small files are read whole)
    /// and descriptors a peer's queue can hold here.
    static let prepareWindow = 16
    /// Files of one channel streamed at once, a chunk of each in turn: a
    /// file behind a huge one (or behind a relay whose source is slow) waits
    /// a few chunks, not the whole file.
    static let maxStreams = 4
    /// Requests carrying block digests (up to 256 KiB each) one channel may
    /// have queued or streaming; an honest fetcher has at most 64 in flight.
    static let maxRequestsWithBlocks = 128
    /// Bytes read per turn of a stream that compares blocks (whole blocks,
    /// at least one): most of an edited file's blocks go as a few bytes of
    /// `.same`, so a turn of one chunk would spend more on the pool round
    /// trip than on reading and hashing.
    static let blockTurn = 2 << 20

    let loop: EventLoop
    let root: String
    let chunkSize: Int
    let resolve: Resolver
    let logger: Logger
    private var sessions: [ObjectIdentifier: Session] = [:]
    /// Bytes sent to peers since start (status, benchmarks).
    var bytesServed: UInt64 = 0
    /// The digests of the blocks of the version with this SHA-256, in
    /// blocks of this size, when this node knows them (`BlockDigestMemory`):
    /// a request comparing blocks is then answered from the digests, and
    /// only the blocks that differ are read.
    var knownBlocks: (_ hash: [UInt8], _ blockSize: UInt32) -> BlockDigests? = { _, _ in nil }
    /// Whether this node is hashing the blocks of the version with this
    /// SHA-256, in blocks of this size (`Fetcher.hashOwnBlocks`): a
    /// block-comparing stream of it waits for them (`knownBlocksSettled`),
    /// up to `maxWaitForKnownBlocks` ms, instead of reading and hashing the
    /// same blocks meanwhile. (Its fetcher's stall limit, 60 s, is far longer.)
    var knownBlocksPending: (_ hash: [UInt8], _ blockSize: UInt32) -> Bool = { _, _ in false }
    var maxWaitForKnownBlocks: UInt64 = 5_000
    /// A version this node serves as held was not on disk as the manifest
    /// says (gone, or another file there): the watcher missed a change, and
    /// the node looks at the path again, or every fetcher would ask for it
    /// forever and the change here never be announced. On the loop.
    var heldFileNotAsKnown: (_ path: String) -> Void = { _ in }
    /// The refusal's message when the file served is not the one announced.
    static let changedOnDisk = "changed on disk since it was announced"

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
        sessions.values.flatMap { session in
            session.streams.map { s in
                (s.item.request.path, session.channel.peerName ?? "?", s.next, s.end, s.item.feed != nil)
            }
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
    func chainDecision(_ key: FileKey, for requester: NodeName, session: ObjectIdentifier) -> ChainDecision {
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
    func endChain(_ key: FileKey, session: ObjectIdentifier) {
        if chains[key]?.session == session { chains[key] = nil }
    }

    /// A pass over this node's own blocks ended (`knownBlocksPending`):
    /// streams waiting for it go on.
    func knownBlocksSettled() {
        for session in sessions.values { session.pump() }
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
}
