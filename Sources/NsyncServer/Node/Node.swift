import Collections
import Logging

/// One nsyncd node: wires the Raft driver, the index, the reconciler, the
/// watcher, the transfer server and fetcher, and the peer connections onto
/// one event loop (DESIGN.md, "One picture"). Everything here runs on the
/// loop thread; blocking work goes to the thread pool and comes back.
public final class Node {
    let config: NodeConfig
    let loop: EventLoop
    var logger: Logger
    let serverTLS: TLSContext
    let clientTLS: TLSContext
    let clusterID: [UInt8]
    let stateDirectory: String
    let temporaryDirectory: String
    let startedAt: UInt64

    var lock: LockFile?
    var raftListener: TCPListener?
    var fileListener: TCPListener?
    var controlListener: UnixListener?
    var signals: [SignalWatcher] = []

    /// The other members, as configured, with their connections.
    var links: [PeerLink] = []
    /// Raft channels peers opened to us (we receive their messages there).
    var inboundRaft: [ObjectIdentifier: Channel] = [:]
    /// File channels peers opened to us (we serve them).
    var members: [NodeName] = []

    var index = FileIndex()
    var reconciler: Reconciler
    var driver: RaftDriver?
    var raftStatus = RaftStatus(role: .follower, leader: nil, term: 0)
    var storage: RaftStorage?
    var recovered: RaftStorage.RecoveredState?
    var transferServer: TransferServer!
    var fetcher: Fetcher!
    var sync: SyncState

    var recentErrors: Deque<String> = []
    var recentConflicts: Deque<String> = []
    var stopping = false
    /// Why the node stopped on its own (`fatal`), if it did: the daemon
    /// then exits with a failure status.
    public private(set) var failure: String?
    /// PATH and its `.nsync` as they were at start-up (see `stateDirectoryIsIntact`).
    var stateIdentity: [FileIdentity?] = []
    /// Set when that check stopped the node: nothing more is written to
    /// `.nsync`; `.being removed` (its lock file lost its name, the
    /// directory itself still ours) drops the manifest as well.
    var stateDirectoryLost: StateDirectoryLoss?
    enum StateDirectoryLoss { case replaced, beingRemoved }
    var waitingForNamesLogged = false
    var onStopped: (() -> Void)?

    /// Creates the node: checks certificates, takes the lock, opens the
    /// listeners and the Raft log, watches PATH. Throws a `StartupError`
    /// naming the problem, before anything was logged or sent.
    public init(config: NodeConfig, loop: EventLoop, logger: Logger) throws {
        self.config = config
        self.loop = loop
        self.logger = logger
        self.logger[metadataKey: "node"] = "\(config.name)"
        stateDirectory = config.stateDirectory
        temporaryDirectory = config.stateDirectory + "/tmp"
        startedAt = loop.now
        do {
            serverTLS = try TLSContext(role: .server, caPath: config.caPath, certificatePath: config.certificatePath, keyPath: config.keyPath)
            clientTLS = try TLSContext(role: .client, caPath: config.caPath, certificatePath: config.certificatePath, keyPath: config.keyPath)
        } catch {
            throw StartupError.tls("\(error)")
        }
        if let own = serverTLS.ownIdentity, !own.matches(config.name) {
            throw StartupError.nameNotInCertificate(name: config.name, certificate: config.certificatePath, names: "\(own)")
        }
        clusterID = serverTLS.clusterID
        reconciler = Reconciler(node: config.name)
        sync = SyncState(root: config.root)
        try prepareStateDirectory()
        try openListeners()
        try openStorage()
        try openWatcher()
        loadManifest()
        if let recovered, recovered.hardState.commit > recovered.snapshot?.metadata.index ?? 0 {
            // The log up to where the node stopped is history to its disk:
            // replayed when Raft starts (`startRaftIfNamed`).
            reconciler.beginReplay()
        }
    }

    /// Starts everything: connections, Raft (once every member is named),
    /// the watcher and the start-up scan, the control socket, signals.
    public func start() throws {
        try startControlSocket()
        try startSignals()
        setUpTransfers()
        startListening()
        links = config.peers.map { PeerLink(address: $0, name: $0.name ?? knownNames[$0.description]) }
        for link in links {
            dial(link, .raft)
            dial(link, .file)
        }
        startRaftIfNamed()
        try startSync()
        logger.info("nsyncd started", metadata: [
            "path": "\(config.root)", "cluster-port": "\(config.clusterPort)", "file-port": "\(config.filePort)",
            "peers": "\(config.peers.map(\.description).joined(separator: ","))",
        ])
    }

    /// Stops accepting work, abandons transfers (temporary files stay in
    /// `.nsync/tmp`, never in PATH), flushes Raft state and the manifest,
    /// closes every handle, then calls `onStopped`.
    public func stop() {
        guard !stopping else { return }
        stopping = true
        logger.info("stopping")
        driver?.stop()
        sync.stopWatching()
        fetcher?.shutdown()
        transferServer?.closeAll()
        for link in links { link.close() }
        for channel in inboundRaft.values { channel.close() }
        raftListener?.close()
        fileListener?.close()
        controlListener?.close()
        for s in signals { s.close() }
        finishStop(deadline: loop.now + 3_000)
    }

    private func finishStop(deadline: UInt64) {
        let idle = (driver?.isIdle ?? true) && !sync.isBusy
        if !idle && loop.now < deadline {
            loop.schedule(after: 20) { [self] in finishStop(deadline: deadline) }
            return
        }
        switch stateDirectoryLost {
        case nil:
            saveManifest(synchronously: true)
        case .replaced:
            break  // Whatever is at PATH now is not ours to write to.
        case .beingRemoved:
            forgetLocalState()
        }
        let storage = self.storage
        self.storage = nil
        storage?.close()
        lock?.release()
        lock = nil
        logger.info("stopped")
        onStopped?()
    }

    func recordError(_ message: String) {
        logger.error("\(message)")
        recentErrors.append(message)
        if recentErrors.count > 20 { recentErrors.removeFirst() }
    }

    func fatal(_ message: String) {
        if failure == nil { failure = message }
        recordError(message)
        logger.critical("cannot continue safely: \(message)")
        stop()
    }
}
