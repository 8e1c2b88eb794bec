extension NodeConfig {
    /// Checks everything that can be checked without opening sockets or TLS
    /// state, and returns the config with `root` made absolute. Throws the
    /// first problem as a `StartupError` naming how to fix it.
    public func validated() throws -> NodeConfig {
        var config = self
        switch PathChecks.kind(of: root) {
        case .missing: throw StartupError.pathMissing(root)
        case .other: throw StartupError.notADirectory(root)
        case .directory: break
        }
        guard PathChecks.isWritable(root) else { throw StartupError.notWritable(root) }
        config.root = PathChecks.absolute(root) ?? root
        guard NodeName.isValidNodeName(name) else { throw StartupError.invalidName(name) }
        guard !peers.isEmpty else {
            throw StartupError.malformedClusterEntry("", "--cluster must name at least one other node")
        }
        var seen = Set<String>()
        for peer in peers {
            if peer.name == name {
                throw StartupError.ownNameInCluster(peer.description)
            }
            let pointsHere = PathChecks.localHostNames.contains(peer.host) || peer.host == listenHost
            if pointsHere && (peer.clusterPort == clusterPort || peer.filePort == filePort) {
                throw StartupError.ownNameInCluster(peer.description)
            }
            let key = "\(peer.host):\(peer.clusterPort)"
            guard seen.insert(key).inserted else { throw StartupError.duplicatePeer(peer.description) }
            if let n = peer.name, !seen.insert("@" + n).inserted { throw StartupError.duplicatePeer(peer.description) }
        }
        guard clusterPort != filePort else {
            throw StartupError.cannotListen(filePort, "--file-server-port and --cluster-port must differ")
        }
        return config
    }
}
