/// Messages of the file channel (the file-server port): a fetcher asks for a
/// byte range of one version of one path; the server answers with a header,
/// data chunks and an end marker, several requests pipelined per connection.
/// Pure values and codecs; any thread.
public enum TransferMessage: Equatable, Sendable {
    case request(FetchRequest)
    case header(FetchHeader)
    /// A chunk of file bytes at `offset`; `bytes` is the rest of the frame.
    case data(requestID: UInt32, offset: UInt64, bytes: ArraySlice<UInt8>)
    case end(requestID: UInt32)
    case cancel(requestID: UInt32)
    /// Server to fetcher, unasked: a large file of the server's is being
    /// hashed for its announcement; it may be fetched as version 0 now.
    case offer(FileOffer)

    /// Frame types on the file channel (distinct from the raft channel's).
    public enum FrameType: UInt8, Sendable {
        case request = 16
        case header = 17
        case data = 18
        case end = 19
        case cancel = 20
        case offer = 21
    }

    public var frameType: FrameType {
        switch self {
        case .request: .request
        case .header: .header
        case .data: .data
        case .end: .end
        case .cancel: .cancel
        case .offer: .offer
        }
    }

    /// Size of a data frame's fields before the file bytes.
    public static let dataPrefixSize = 4 + 8

    public func encodePayload(into buffer: inout ByteBuffer) {
        switch self {
        case .request(let r):
            buffer.writeInteger(r.requestID)
            buffer.writeShortString(r.path)
            buffer.writeInteger(r.version)
            buffer.writeInteger(r.offset)
            buffer.writeInteger(r.length)
            buffer.writeInteger((r.noRedirect ? FetchRequest.noRedirectFlag : 0)
                                | (r.prefixDigest != nil ? FetchRequest.prefixDigestFlag : 0))
            if let digest = r.prefixDigest {
                precondition(digest.count == SHA256.digestLength, "a prefix digest is a SHA-256")
                buffer.writeBytes(digest)
            }
        case .header(let h):
            buffer.writeInteger(h.requestID)
            buffer.writeInteger(h.status.rawValue)
            buffer.writeInteger(h.size)
            buffer.writeShortString(String(h.message.prefix(1000)))
        case let .data(id, offset, bytes):
            buffer.writeInteger(id)
            buffer.writeInteger(offset)
            buffer.writeBytes(bytes)
        case .end(let id), .cancel(let id):
            buffer.writeInteger(id)
        case .offer(let o):
            buffer.writeShortString(o.path)
            buffer.writeInteger(o.size)
            buffer.writeInteger(o.mtime)
        }
    }

    /// Decodes one frame's payload; throws on anything malformed (the caller
    /// closes that connection).
    public static func decode(type: UInt8, payload: inout ByteBuffer) throws -> TransferMessage {
        guard let kind = FrameType(rawValue: type) else { throw WireError.unknownType(type) }
        let message: TransferMessage
        switch kind {
        case .request:
            let id: UInt32 = try payload.readInteger()
            let path = try payload.readShortString()
            let version: UInt64 = try payload.readInteger()
            let offset: UInt64 = try payload.readInteger()
            let length: UInt64 = try payload.readInteger()
            let flags: UInt8 = try payload.readInteger()
            guard flags & ~(FetchRequest.noRedirectFlag | FetchRequest.prefixDigestFlag) == 0 else {
                throw WireError.malformed("unknown request flags \(flags)")
            }
            var prefixDigest: [UInt8]?
            if flags & FetchRequest.prefixDigestFlag != 0 {
                prefixDigest = try payload.readBytes(SHA256.digestLength)
                guard offset > 0 else { throw WireError.malformed("a prefix digest for an empty prefix") }
            }
            message = .request(FetchRequest(requestID: id, path: path, version: version, offset: offset, length: length,
                                            noRedirect: flags & FetchRequest.noRedirectFlag != 0,
                                            prefixDigest: prefixDigest))
        case .header:
            let id: UInt32 = try payload.readInteger()
            let raw: UInt8 = try payload.readInteger()
            guard let status = FetchStatus(rawValue: raw) else { throw WireError.malformed("fetch status \(raw)") }
            let size: UInt64 = try payload.readInteger()
            message = .header(FetchHeader(requestID: id, status: status, size: size, message: try payload.readShortString()))
        case .data:
            let id: UInt32 = try payload.readInteger()
            let offset: UInt64 = try payload.readInteger()
            message = .data(requestID: id, offset: offset, bytes: try payload.readSlice(payload.readableBytes))
        case .end:
            message = .end(requestID: try payload.readInteger())
        case .cancel:
            message = .cancel(requestID: try payload.readInteger())
        case .offer:
            let path = try payload.readShortString()
            message = .offer(FileOffer(path: path, size: try payload.readInteger(), mtime: try payload.readInteger()))
        }
        if case .data = message {} else if payload.readableBytes != 0 {
            throw WireError.malformed("\(payload.readableBytes) trailing bytes in \(kind)")
        }
        return message
    }
}

/// "Send me bytes offset..<offset+length of version V of path" (length
/// UInt64.max: to the end). With `noRedirect` the server must not answer
/// `.redirect` (the fetcher was redirected once already). With
/// `prefixDigest`, the fetcher starts from bytes it already had (the
/// version it holds, which the new one may extend): the server first checks
/// that its bytes 0..<offset have that SHA-256, and answers
/// `.prefixDiffers` if not.
public struct FetchRequest: Equatable, Sendable {
    public var requestID: UInt32
    public var path: String
    public var version: UInt64
    public var offset: UInt64
    public var length: UInt64
    public var noRedirect: Bool
    public var prefixDigest: [UInt8]?

    static let noRedirectFlag: UInt8 = 1
    static let prefixDigestFlag: UInt8 = 2

    public init(requestID: UInt32, path: String, version: UInt64, offset: UInt64 = 0, length: UInt64 = .max,
                noRedirect: Bool = false, prefixDigest: [UInt8]? = nil) {
        self.requestID = requestID
        self.path = path
        self.version = version
        self.offset = offset
        self.length = length
        self.noRedirect = noRedirect
        self.prefixDigest = prefixDigest
    }
}

/// A file its node is about to announce, offered before its hash is known:
/// a fetcher may copy it as version 0 and keep the copy if the SHA-256
/// that commits matches (the origin's hashing then overlaps the transfer).
public struct FileOffer: Equatable, Sendable {
    public var path: String
    public var size: UInt64
    public var mtime: Int64

    public init(path: String, size: UInt64, mtime: Int64) {
        self.path = path
        self.size = size
        self.mtime = mtime
    }
}

/// The server's answer before any data: ok with the file's size, or why not.
public struct FetchHeader: Equatable, Sendable {
    public var requestID: UInt32
    public var status: FetchStatus
    public var size: UInt64
    public var message: String

    public init(requestID: UInt32, status: FetchStatus, size: UInt64 = 0, message: String = "") {
        self.requestID = requestID
        self.status = status
        self.size = size
        self.message = message
    }
}

/// Outcome of a fetch request as the server sees it.
public enum FetchStatus: UInt8, Sendable {
    case ok = 0
    /// The path is not in the server's index.
    case notFound = 1
    /// The server does not hold that version (yet, or any more).
    case versionNotHeld = 2
    /// The path is invalid or escapes the synced directory.
    case invalidPath = 3
    /// The server could not read the file.
    case readError = 4
    /// Ask the node named in the message instead: it is receiving this very
    /// version right now and relays it as it arrives, so the file leaves
    /// its origin once, not once per receiver.
    case redirect = 5
    /// The server's bytes before the requested offset are not those the
    /// fetcher started from (`FetchRequest.prefixDigest`): ask from 0.
    case prefixDiffers = 6
}
