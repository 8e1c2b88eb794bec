/// Everything a node needs to start, parsed from the command line and checked
/// before any socket opens. A plain value; any thread.
public struct NodeConfig: Sendable {
    /// The synced directory (absolute, no trailing slash).
    public var root: String
    public var name: NodeName
    /// Address to listen on; nil means all interfaces.
    public var listenHost: String?
    public var clusterPort: Int
    public var filePort: Int
    /// The other members, as this node reaches them.
    public var peers: [PeerAddress]
    public var caPath: String
    public var certificatePath: String
    public var keyPath: String
    public var tuning: Tuning

    public init(root: String, name: NodeName, listenHost: String? = nil, clusterPort: Int, filePort: Int,
                peers: [PeerAddress], caPath: String, certificatePath: String, keyPath: String,
                tuning: Tuning = Tuning()) {
        self.root = root
        self.name = name
        self.listenHost = listenHost
        self.clusterPort = clusterPort
        self.filePort = filePort
        self.peers = peers
        self.caPath = caPath
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.tuning = tuning
    }

    /// `<root>/.nsync`: state that is never synced.
    public var stateDirectory: String { root + "/.nsync" }
    public var controlSocketPath: String { stateDirectory + "/control.sock" }

    /// Knobs with defaults chosen for a LAN; tests shrink the snapshot threshold.
    public struct Tuning: Sendable {
        /// Raft tick: heartbeats every tick, elections after 6-12 ticks (300-600 ms).
        public var tickMilliseconds: Int = 50
        /// Log entries applied since the last snapshot before a new one is taken.
        public var snapshotEntries: Int = 10_000
        /// Bytes per file-data frame.
        public var chunkSize: Int = 256 << 10
        /// Silence on a peer channel after which it is closed and dialed again (ms).
        public var peerSilenceLimit: UInt64 = Channel.defaultSilenceLimit
        /// How long the bytes of a file deleted here because another node
        /// deleted it are kept, for a rename's new name (ms).
        public var keptFileLifetime: UInt64 = 60_000
        /// How often a directory kept for the ignored files it holds is
        /// checked, to be removed once they are gone (ms).
        public var keptDirectoryCheck: UInt64 = 15_000
        /// How often the whole tree is compared with what the node knows
        /// (ms; 0: never), for changes inotify does not report. As
        /// Syncthing's hourly rescan beside its watcher.
        public var rescanInterval: UInt64 = 3_600_000
        /// A holder that answers none of the requests in flight to it for
        /// this long is taken for stuck; they go to other holders (ms).
        public var fetchStallLimit: UInt64 = Fetcher.defaultStallLimit
        /// How long an offer of a large file counts: its origin serves it
        /// as version 0, and an early copy a restart cut off is kept (ms).
        public var offerLifetime: UInt64 = Node.defaultOfferLifetime
        public init() {}
    }
}

/// One `--cluster` entry: `[NAME@]HOST:CLUSTER_PORT:FILE_PORT`. Without NAME, the
/// peer's name is learned from its certificate on first contact.
public struct PeerAddress: Equatable, Sendable, CustomStringConvertible {
    public var name: NodeName?
    public var host: String
    public var clusterPort: Int
    public var filePort: Int

    public init(name: NodeName? = nil, host: String, clusterPort: Int, filePort: Int) {
        self.name = name
        self.host = host
        self.clusterPort = clusterPort
        self.filePort = filePort
    }

    public var description: String {
        (name.map { "\($0)@" } ?? "") + "\(host):\(clusterPort):\(filePort)"
    }

    /// Parses one entry; IPv6 hosts go in brackets: `[::1]:10002:8002`.
    public static func parse(_ text: String) throws -> PeerAddress {
        let entry = text.trimmingSpaces()
        var rest = Substring(entry)
        var name: NodeName?
        if let at = rest.firstIndex(of: "@") {
            name = String(rest[..<at])
            rest = rest[rest.index(after: at)...]
            guard NodeName.isValidNodeName(name!) else {
                throw StartupError.malformedClusterEntry(text, "'\(name!)' is not a valid node name (letters, digits, '.', '_', '-')")
            }
        }
        let host: String
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else {
                throw StartupError.malformedClusterEntry(text, "missing ']' after an IPv6 address")
            }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            rest = rest[rest.index(after: close)...]
            guard rest.hasPrefix(":") else {
                throw StartupError.malformedClusterEntry(text, "expected ':' after ']'")
            }
            rest = rest.dropFirst()
        } else {
            guard let colon = rest.firstIndex(of: ":") else {
                throw StartupError.malformedClusterEntry(text, "expected HOST:CLUSTER_PORT:FILE_PORT")
            }
            host = String(rest[..<colon])
            rest = rest[rest.index(after: colon)...]
        }
        let ports = rest.split(separator: ":", omittingEmptySubsequences: false)
        guard !host.isEmpty, ports.count == 2 else {
            throw StartupError.malformedClusterEntry(text, "expected HOST:CLUSTER_PORT:FILE_PORT")
        }
        guard let c = Int(ports[0]), (1...65535).contains(c), let f = Int(ports[1]), (1...65535).contains(f) else {
            throw StartupError.malformedClusterEntry(text, "ports must be numbers from 1 to 65535")
        }
        return PeerAddress(name: name, host: host, clusterPort: c, filePort: f)
    }

    /// Parses a comma-separated `--cluster` list.
    public static func parseList(_ text: String) throws -> [PeerAddress] {
        try text.split(separator: ",").map { try parse(String($0)) }
    }
}

extension NodeName {
    /// Node names travel in Hellos and certificates: 1-64 of [A-Za-z0-9._-].
    public static func isValidNodeName(_ name: String) -> Bool {
        guard (1...64).contains(name.utf8.count) else { return false }
        return name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x5F || c == 0x2D
        }
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
