#if canImport(Glibc)
import Glibc
#endif
import Logging

extension Node {
    /// Creates `.nsync/` (mode 0700) and its `tmp/`, and takes the lock that
    /// keeps a second nsyncd off this PATH.
    func prepareStateDirectory() throws {
        do {
            try FileDescriptor.makeDirectories(stateDirectory, permissions: 0o700)
            try FileDescriptor.makeDirectories(temporaryDirectory, permissions: 0o700)
        } catch {
            throw StartupError.state("cannot create \(stateDirectory): \(error)")
        }
        do {
            lock = try LockFile(path: stateDirectory + "/lock")
        } catch LockFile.Failure.held {
            throw StartupError.alreadyRunning(config.root)
        } catch {
            throw StartupError.state("cannot lock \(stateDirectory)/lock: \(error)")
        }
        stateIdentity = stateDirectories.map { (try? FileIdentity.of($0)) ?? nil }
        for directory in OpenedDirectories.restore(root: config.root) {
            logger.notice("\(directory): mode put back (the node stopped while an install had made it writable)")
        }
    }

    private var stateDirectories: [String] { [config.root, stateDirectory] }

    /// Whether PATH and its `.nsync` are still the directories the node
    /// started with. If PATH was removed, renamed, replaced or unmounted
    /// under the running node, every file in it looks deleted: announcing
    /// that would delete them on every node. The node stops instead (and
    /// says why), without proposing anything more; started again, it
    /// rejoins with whatever PATH then holds. Checked before every proposal
    /// and every second.
    /// A stat that fails otherwise (EIO, EACCES) proves nothing: checked again later.
    /// The lock file losing its name says the same a moment sooner: `rm -rf`
    /// of PATH is emptying `.nsync` (and a file this node writes there could
    /// make the directory's own removal fail, leaving its identity intact).
    func stateDirectoryIsIntact() -> Bool {
        guard !stopping else { return false }
        let replaced = (try? stateDirectories.map(FileIdentity.of)).map { $0 != stateIdentity } ?? false
        let beingRemoved = !(lock?.isLinked ?? true)
        guard replaced || beingRemoved else { return true }
        stateDirectoryLost = replaced ? .replaced : .beingRemoved
        fatal("\(config.root) or its .nsync state directory was removed, moved, replaced or unmounted "
              + "while nsyncd ran: stopping without announcing what went with it (the other nodes keep "
              + "their files). Put the directory back, or start nsyncd again to rejoin with what PATH holds now")
        return false
    }

    /// `rm -rf` is emptying `.nsync` (still this node's directory) while
    /// the node stops: a file written there meanwhile (the last manifest
    /// save, an install's journal) can make its removal fail. A manifest
    /// left behind would list the files the same `rm` removed, and the next
    /// start would announce them deleted. Without it the node rejoins as a
    /// new one with what PATH holds, as the stop message says.
    func forgetLocalState() {
        for name in ["manifest", "manifest.tmp", "kept"] {
            _ = try? FileDescriptor.removeIfPresent(stateDirectory + "/" + name)
        }
        logger.notice("forgot this node's record of its files: started again, it rejoins with what PATH then holds")
    }

    /// Binds both TLS ports now, so a port in use fails start-up at once.
    func openListeners() throws {
        let host = config.listenHost ?? "0.0.0.0"
        raftListener = try bind(host: host, port: config.clusterPort)
        fileListener = try bind(host: host, port: config.filePort)
    }

    private func bind(host: String, port: Int) throws -> TCPListener {
        let listener = TCPListener(loop: loop)
        do {
            try listener.bind(host: host, port: port)
            return listener
        } catch let error as UVError where error.isAddressInUse {
            listener.close()
            throw StartupError.portInUse(port)
        } catch {
            listener.close()
            throw StartupError.cannotListen(port, "\(error)")
        }
    }

    /// Opens the Raft log (repairing a torn tail, refusing corruption) and
    /// restores the index from its snapshot.
    func openStorage() throws {
        do {
            let (storage, state) = try RaftStorage.open(directory: stateDirectory + "/raft")
            for note in state.notes { logger.warning("raft log recovery: \(note)") }
            self.storage = storage
            recovered = state
            if let snapshot = state.snapshot {
                index = try FileIndex(snapshotData: snapshot.data)
            }
        } catch let error as RaftStorageError {
            throw StartupError.state("\(error)")
        } catch {
            throw StartupError.state("cannot open the raft log in \(stateDirectory)/raft: \(error)")
        }
    }

    /// SIGTERM and SIGINT stop the node cleanly.
    func startSignals() throws {
        for number in [SIGTERM, SIGINT] {
            let watcher = try SignalWatcher(loop: loop)
            try watcher.start(signal: number) { [unowned self] signal in
                logger.notice("received signal \(signal)")
                stop()
            }
            signals.append(watcher)
        }
    }

    // MARK: learned member names

    /// Names of `--cluster` entries given without NAME@, learned from their
    /// certificates on first contact and kept in `.nsync/members`.
    var knownNames: [String: NodeName] {
        guard let text = try? FileDescriptor.readWholeFile(stateDirectory + "/members") else {
            return [:]
        }
        var names: [String: NodeName] = [:]
        for line in String(decoding: text, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2 { names[String(parts[0])] = String(parts[1]) }
        }
        return names
    }

    func saveKnownNames() {
        let text = links.compactMap { link in link.name.map { "\(link.address.description) \($0)\n" } }.joined()
        let path = stateDirectory + "/members"
        do {
            let fd = try FileDescriptor.open(path + ".tmp", .writeOnly, options: [.create, .truncate], permissions: 0o600)
            try fd.closeAfter {
                try fd.write(all: Array(text.utf8))
                try fd.sync()
            }
            try FileDescriptor.rename(path + ".tmp", to: path)
        } catch {
            recordError("cannot save member names to \(path): \(error)")
        }
    }
}
