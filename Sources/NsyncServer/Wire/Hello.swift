/// The first message in both directions after the TLS handshake: who we are,
/// which cluster and protocol version we speak, and what this connection is
/// for. A plain value; usable from any thread.
///
/// Layout (big-endian):
///
///     "NSYN" | u16 version | 32 bytes cluster id | u8 name length | name | u8 channel
///
/// Every future version keeps the first 6 bytes (magic and version) so that a
/// mismatch is always reported as one, never as garbage.
public struct Hello: Equatable, Sendable {
    /// What a connection carries; each has its own port or purpose, so a bulk
    /// transfer never delays a heartbeat.
    public enum Channel: UInt8, Sendable, CustomStringConvertible {
        case raft = 1
        case file = 2
        case control = 3

        public var description: String {
            switch self {
            case .raft: "raft"
            case .file: "file"
            case .control: "control"
            }
        }
    }

    public static let magic: [UInt8] = Array("NSYN".utf8)
    /// 2: the file channel carries offers (`TransferMessage.offer`).
    /// 3: every channel carries keepalives (`Channel.keepaliveFrameType`).
    /// 4: fetch requests carry flags (`noRedirect`), answers may redirect.
    /// 5: the index counts a deleted directory with live entries below it
    ///    as present (`FileIndex.liveChildren`): a put that older nodes
    ///    accept is rejected, so the two must not apply one log.
    /// 6: fetch requests may carry a prefix digest, answers may say
    ///    `prefixDiffers`.
    /// 7: fetch requests may carry block digests, answers may say `same`.
    /// 8: fetch requests may say `takesZeros`, answers may be `zeros`.
    /// 9: a fetch's header says how much of the file the holder's disk
    ///    holds (`FetchHeader.allocated`: a sparse file less than its size).
    public static let currentVersion: UInt16 = 9
    /// Bytes in a cluster id: the SHA-256 of the cluster CA certificate.
    public static let clusterIDSize = 32
    /// Upper bound of an encoded Hello, for callers that read it before framing.
    public static let maxEncodedSize = 4 + 2 + clusterIDSize + 1 + NodeNameRule.maxLength + 1

    public var version: UInt16
    public var clusterID: [UInt8]
    public var nodeName: NodeName
    public var channel: Channel

    public init(version: UInt16 = Hello.currentVersion, clusterID: [UInt8], nodeName: NodeName, channel: Channel) {
        precondition(clusterID.count == Hello.clusterIDSize, "cluster id must be 32 bytes")
        precondition(NodeNameRule.isValid(nodeName), "invalid node name \(nodeName)")
        self.version = version
        self.clusterID = clusterID
        self.nodeName = nodeName
        self.channel = channel
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeBytes(Hello.magic)
        buffer.writeInteger(version)
        buffer.writeBytes(clusterID)
        let name = Array(nodeName.utf8)
        buffer.writeInteger(UInt8(name.count))
        buffer.writeBytes(name)
        buffer.writeInteger(channel.rawValue)
    }

    public func encoded() -> [UInt8] {
        var buffer = ByteBuffer(capacity: Hello.maxEncodedSize)
        encode(into: &buffer)
        return buffer.bytes
    }

    /// Reads a Hello. Throws `HelloError.badMagic` when the peer does not speak
    /// nsync at all, `.versionMismatch` when it speaks another version (the rest
    /// is not parsed: its layout may differ), and `.malformed` otherwise.
    public static func decode(_ buffer: inout ByteBuffer) throws -> Hello {
        do {
            let magic = try buffer.readBytes(4)
            guard magic == Hello.magic else { throw HelloError.badMagic(received: magic) }
            let version = try buffer.readInteger(as: UInt16.self)
            guard version == currentVersion else {
                throw HelloError.versionMismatch(theirs: version, ours: currentVersion)
            }
            let clusterID = try buffer.readBytes(clusterIDSize)
            let nameLength = Int(try buffer.readInteger(as: UInt8.self))
            let name = try decodeUTF8(try buffer.readSlice(nameLength))
            if let why = NodeNameRule.violation(in: name) { throw HelloError.malformed(why) }
            let rawChannel = try buffer.readInteger(as: UInt8.self)
            guard let channel = Channel(rawValue: rawChannel) else {
                throw HelloError.malformed("unknown channel kind \(rawChannel)")
            }
            return Hello(version: version, clusterID: clusterID, nodeName: name, channel: channel)
        } catch let error as WireError {
            throw HelloError.malformed(error.description)
        }
    }

    /// Decides whether to keep talking to the peer that sent this Hello.
    /// - Parameters:
    ///   - expectedClusterID: our cluster id (SHA-256 of our CA certificate).
    ///   - certificateNames: the names in the peer's verified certificate
    ///     (subject CN and DNS subject alternative names); the claimed node
    ///     name must be one of them, so a node cannot pose as another.
    ///   - expectedChannel: what the listening port (or our dial) is for.
    public func check(expectedClusterID: [UInt8], certificateNames: [String], expectedChannel: Channel) throws {
        guard version == Hello.currentVersion else {
            throw HelloError.versionMismatch(theirs: version, ours: Hello.currentVersion)
        }
        guard clusterID == expectedClusterID else {
            throw HelloError.wrongCluster(theirs: clusterID, ours: expectedClusterID)
        }
        guard certificateNames.contains(nodeName) else {
            throw HelloError.nameNotInCertificate(claimed: nodeName, certificateNames: certificateNames)
        }
        guard channel == expectedChannel else {
            throw HelloError.wrongChannel(expected: expectedChannel, received: channel)
        }
    }
}

/// Why a peer's Hello was refused; the connection is closed and this is logged.
public enum HelloError: Error, Equatable, CustomStringConvertible, Sendable {
    case badMagic(received: [UInt8])
    case versionMismatch(theirs: UInt16, ours: UInt16)
    case wrongCluster(theirs: [UInt8], ours: [UInt8])
    case nameNotInCertificate(claimed: String, certificateNames: [String])
    case wrongChannel(expected: Hello.Channel, received: Hello.Channel)
    case malformed(String)

    public var description: String {
        switch self {
        case let .badMagic(received):
            "peer did not start with the nsync Hello (got bytes \(DiagnosticText.hex(received))): it is not an nsyncd, or something else listens on that port"
        case let .versionMismatch(theirs, ours):
            "peer speaks protocol version \(theirs), we speak \(ours): run the same nsyncd release on every node"
        case let .wrongCluster(theirs, ours):
            "peer belongs to cluster \(DiagnosticText.hex(theirs.prefix(8)))…, we are \(DiagnosticText.hex(ours.prefix(8)))…: its certificate is from another CA; give every node the same ca.pem, or remove the peer from --peers"
        case let .nameNotInCertificate(claimed, names):
            "peer claims to be \(DiagnosticText.quoted(claimed)) but its certificate names \(names.map(DiagnosticText.quoted).joined(separator: ", ")): issue it a certificate for its --name, or fix its --name"
        case let .wrongChannel(expected, received):
            "peer opened a \(received) connection on our \(expected) port: check the port numbers in its --peers / --join settings"
        case let .malformed(why):
            "malformed Hello from peer (\(why)): it is not a compatible nsyncd"
        }
    }
}
