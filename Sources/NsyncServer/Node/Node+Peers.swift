import Logging

/// One configured peer: its address, its name once known, and our two
/// outbound channels to it (raft: we send our messages there; file: we fetch
/// there). Reconnects with backoff. Loop thread only.
final class PeerLink {
    let address: PeerAddress
    var name: NodeName?
    var raft: Channel?
    var file: Channel?
    var raftBackoff = Backoff(initial: 100, maximum: 2_000)
    var fileBackoff = Backoff(initial: 100, maximum: 2_000)
    var timers: [LoopTimer] = []
    /// Streams still connecting (closed if the link closes first).
    var connecting: [TCPStream] = []
    var closed = false
    /// When each channel last connected (loop ms), for status.
    var raftConnected = false

    init(address: PeerAddress, name: NodeName?) {
        self.address = address
        self.name = name
    }

    func channel(_ kind: Hello.Channel) -> Channel? { kind == .raft ? raft : file }

    func close() {
        closed = true
        for t in timers { t.close() }
        timers.removeAll()
        for stream in connecting { stream.close() }
        connecting.removeAll()
        raft?.close()
        file?.close()
    }
}

extension Node {
    /// Connects to `link` on one channel; on failure or disconnect, tries again after a backoff.
    func dial(_ link: PeerLink, _ kind: Hello.Channel) {
        guard !stopping, !link.closed else { return }
        let port = kind == .raft ? link.address.clusterPort : link.address.filePort
        let stream = TCPStream(loop: loop)
        // A host that is down or cut off answers no SYN: the kernel would
        // wait about two minutes, and a host back meanwhile would be found
        // only at the next retransmission (up to a minute apart). Give up
        // after the peer timeout instead; the dial is tried again.
        let limit = config.tuning.peerSilenceLimit
        var connecting = true
        let timeout = loop.schedule(after: limit) { [self] in
            guard connecting else { return }
            logger.debug("connecting to \(link.address) (\(kind)) timed out after \(Double(limit) / 1000) s; trying again")
            stream.close()  // the connect then completes with ECANCELED
        }
        link.timers.append(timeout)
        link.connecting.append(stream)
        stream.connect(host: link.address.host, port: port) { [self] error in
            connecting = false
            timeout.close()
            link.connecting.removeAll { $0 === stream }
            if let error {
                stream.close()
                logger.trace("cannot connect to \(link.address) (\(kind)): \(error)")
                redial(link, kind)
                return
            }
            guard let channel = makeChannel(stream, context: clientTLS, kind: kind, peer: link.address.description) else {
                redial(link, kind)
                return
            }
            channel.onReady = { [self, unowned channel] peer in
                if let expected = link.name, expected != peer {
                    guard driver == nil, !links.contains(where: { $0 !== link && $0.name == peer }) else {
                        recordError("\(link.address) presents itself as \(peer), but this node knows it as \(expected); not talking to it")
                        channel.close()
                        return
                    }
                    // Learned before Raft ever started here (from a daemon
                    // started under another's name, since replaced): nothing
                    // depends on it yet, and keeping it would keep the cluster
                    // from ever forming.
                    logger.notice("\(link.address) now presents itself as \(peer), not \(expected): learned again")
                    link.name = nil
                }
                if link.name == nil {
                    if let other = links.first(where: { $0 !== link && $0.name == peer }) {
                        // Two members cannot share a name (a copy of another
                        // node's name and certificate): Raft would refuse to start.
                        recordError("\(link.address) presents itself as \(peer), the name of \(other.address); not talking to it until one is renamed")
                        channel.close()
                        return
                    }
                    link.name = peer
                    saveKnownNames()
                }
                if kind == .raft {
                    link.raft = channel
                    link.raftBackoff.reset()
                    logger.info("connected to peer", metadata: ["peer": "\(peer)", "channel": "raft"])
                    startRaftIfNamed()
                } else {
                    link.file = channel
                    link.fileBackoff.reset()
                    logger.debug("connected to peer", metadata: ["peer": "\(peer)", "channel": "file"])
                    fetcher.channelReady(peer, channel)
                }
            }
            channel.onFrame = { [self] _ in
                // Peers send on their own outbound raft channel; nothing comes back here.
                if kind == .raft { logger.trace("ignoring a frame on an outbound raft channel") }
            }
            channel.onClose = { [self, unowned channel] error in
                let wasReady = link.channel(kind) === channel
                if kind == .raft, link.raft === channel { link.raft = nil }
                if kind == .file, link.file === channel {
                    link.file = nil
                    if let name = link.name { fetcher.channelClosed(name, channel) }
                }
                if wasReady {
                    logger.info("disconnected from peer", metadata: [
                        "peer": "\(link.name ?? link.address.description)", "channel": "\(kind)",
                        "reason": "\(error.map { "\($0)" } ?? "closed")",
                    ])
                }
                redial(link, kind)
            }
            channel.start()
        }
    }

    private func redial(_ link: PeerLink, _ kind: Hello.Channel) {
        guard !stopping, !link.closed else { return }
        let delay = kind == .raft ? link.raftBackoff.next() : link.fileBackoff.next()
        let timer = loop.schedule(after: delay) { [self] in
            link.timers.removeAll { $0.isClosing }
            dial(link, kind)
        }
        link.timers.append(timer)
    }

    /// Accepts peers on both ports: raft channels bring their messages, file
    /// channels their fetch requests.
    func startListening() {
        do {
            try raftListener?.listen { [self] stream in accept(stream, .raft) }
            try fileListener?.listen { [self] stream in accept(stream, .file) }
        } catch {
            fatal("cannot listen: \(error)")
        }
    }

    /// TLS and Hello over a connected stream; nil (stream closed, error
    /// recorded) if TLS cannot even be set up.
    private func makeChannel(_ stream: TCPStream, context: TLSContext, kind: Hello.Channel, peer: String) -> Channel? {
        try? stream.setNoDelay(true)
        do {
            let tls = try TLSConnection(stream: stream, context: context, loop: loop, logger: logger)
            return Channel(connection: tls, kind: kind, localName: config.name, clusterID: clusterID, logger: logger,
                           silenceLimit: config.tuning.peerSilenceLimit)
        } catch {
            stream.close()
            recordError("TLS setup for \(peer) failed: \(error)")
            return nil
        }
    }

    private func accept(_ stream: TCPStream, _ kind: Hello.Channel) {
        guard !stopping else { return stream.close() }
        guard let channel = makeChannel(stream, context: serverTLS, kind: kind, peer: "an incoming connection") else { return }
        let key = ObjectIdentifier(channel)
        channel.onReady = { [self, unowned channel] peer in
            let allowed = members.isEmpty ? links.contains { $0.name == nil || $0.name == peer } : members.contains(peer)
            guard allowed else {
                logger.warning("refusing \(peer): not a member of this cluster")
                channel.close()
                return
            }
        }
        switch kind {
        case .raft:
            inboundRaft[key] = channel
            channel.onFrame = { [self, unowned channel] frame in receiveRaft(frame, on: channel) }
            channel.onClose = { [self] _ in inboundRaft[key] = nil }
        case .file:
            transferServer.accept(channel)
        case .control:
            channel.close()
        }
        channel.start()
    }

    /// Decodes a Raft message and steps it, if its sender is who the
    /// certificate says: a member cannot speak for another.
    private func receiveRaft(_ frame: Frame, on channel: Channel) {
        guard frame.type == Node.raftFrameType else {
            logger.warning("unexpected frame type \(frame.type) on a raft channel; closing it")
            return channel.close()
        }
        var payload = frame.payload
        do {
            let message = try RaftMessage.decode(from: &payload)
            guard message.from == channel.peerName, message.to == config.name else {
                logger.warning("raft message from \(message.from) to \(message.to) on \(channel.peerName ?? "?")'s channel; closing it")
                return channel.close()
            }
            driver?.receive(message)
        } catch {
            logger.warning("malformed raft message from \(channel.peerName ?? "?"): \(error); closing the channel")
            channel.close()
        }
    }

    static let raftFrameType: UInt8 = 1

    /// Sends Raft messages on our outbound channels; a peer not connected
    /// misses them (Raft retries).
    func sendRaft(_ messages: [RaftMessage]) {
        var batches: [NodeName: ByteBuffer] = [:]
        for message in messages {
            var buffer = batches[message.to] ?? ByteBuffer(capacity: 256)
            try? Frame.encode(type: Node.raftFrameType, into: &buffer) { message.encode(into: &$0) }
            batches[message.to] = buffer
        }
        for (peer, buffer) in batches {
            // A peer that does not read is not buffered for: Raft resends what matters.
            guard let channel = links.first(where: { $0.name == peer })?.raft, channel.isReady, channel.isWritable else { continue }
            channel.send(buffer)
        }
    }
}
