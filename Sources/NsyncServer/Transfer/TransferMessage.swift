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
    /// Instead of data: bytes `offset..<offset+length` are those the
    /// fetcher holds at the same offsets (its `BlockDigests` said so).
    case same(requestID: UInt32, offset: UInt64, length: UInt64)
    /// Instead of data: bytes `offset..<offset+length` are all zeros (a
    /// sparse file's holes cross the network as this). Only to a request
    /// that says it takes them (`FetchRequest.takesZeros`).
    case zeros(requestID: UInt32, offset: UInt64, length: UInt64)

    /// Frame types on the file channel (distinct from the raft channel's).
    public enum FrameType: UInt8, Sendable {
        case request = 16
        case header = 17
        case data = 18
        case end = 19
        case cancel = 20
        case offer = 21
        case same = 22
        case zeros = 23
    }

    public var frameType: FrameType {
        switch self {
        case .request: .request
        case .header: .header
        case .data: .data
        case .end: .end
        case .cancel: .cancel
        case .offer: .offer
        case .same: .same
        case .zeros: .zeros
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
                                | (r.prefixDigest != nil ? FetchRequest.prefixDigestFlag : 0)
                                | (r.blocks != nil ? FetchRequest.blocksFlag : 0)
                                | (r.takesZeros ? FetchRequest.takesZerosFlag : 0))
            if let digest = r.prefixDigest {
                precondition(digest.count == SHA256.digestLength, "a prefix digest is a SHA-256")
                buffer.writeBytes(digest)
            }
            if let blocks = r.blocks {
                buffer.writeInteger(blocks.blockSize)
                buffer.writeInteger(UInt32(blocks.count))
                buffer.writeBytes(blocks.digests)
            }
        case .header(let h):
            buffer.writeInteger(h.requestID)
            buffer.writeInteger(h.status.rawValue)
            buffer.writeInteger(h.size)
            buffer.writeShortString(String(h.message.prefix(1000)))
            buffer.writeInteger(h.allocated)
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
        case let .same(id, offset, length), let .zeros(id, offset, length):
            buffer.writeInteger(id)
            buffer.writeInteger(offset)
            buffer.writeInteger(length)
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
            let known = FetchRequest.noRedirectFlag | FetchRequest.prefixDigestFlag | FetchRequest.blocksFlag
                | FetchRequest.takesZerosFlag
            guard flags & ~known == 0 else {
                throw WireError.malformed("unknown request flags \(flags)")
            }
            var prefixDigest: [UInt8]?
            if flags & FetchRequest.prefixDigestFlag != 0 {
                prefixDigest = try payload.readBytes(SHA256.digestLength)
                guard offset > 0 else { throw WireError.malformed("a prefix digest for an empty prefix") }
            }
            var blocks: BlockDigests?
            if flags & FetchRequest.blocksFlag != 0 {
                let blockSize: UInt32 = try payload.readInteger()
                let count: UInt32 = try payload.readInteger()
                guard BlockDigests.blockSizes.contains(Int(blockSize)), blockSize.nonzeroBitCount == 1 else {
                    throw WireError.malformed("block size \(blockSize)")
                }
                guard count >= 1, count <= BlockDigests.maxCount else { throw WireError.malformed("\(count) block digests") }
                blocks = BlockDigests(blockSize: blockSize,
                                      digests: try payload.readBytes(Int(count) * BlockDigests.digestLength))
            }
            message = .request(FetchRequest(requestID: id, path: path, version: version, offset: offset, length: length,
                                            noRedirect: flags & FetchRequest.noRedirectFlag != 0,
                                            prefixDigest: prefixDigest, blocks: blocks,
                                            takesZeros: flags & FetchRequest.takesZerosFlag != 0))
        case .header:
            let id: UInt32 = try payload.readInteger()
            let raw: UInt8 = try payload.readInteger()
            guard let status = FetchStatus(rawValue: raw) else { throw WireError.malformed("fetch status \(raw)") }
            let size: UInt64 = try payload.readInteger()
            let text = try payload.readShortString()
            let allocated: UInt64 = try payload.readInteger()
            guard allocated <= size else { throw WireError.malformed("\(allocated) bytes allocated of a file of \(size)") }
            message = .header(FetchHeader(requestID: id, status: status, size: size, allocated: allocated, message: text))
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
        case .same, .zeros:
            let id: UInt32 = try payload.readInteger()
            let offset: UInt64 = try payload.readInteger()
            let length: UInt64 = try payload.readInteger()
            guard length > 0, offset <= UInt64.max - length else { throw WireError.malformed("\(kind) bytes \(offset)+\(length)") }
            message = kind == .same ? .same(requestID: id, offset: offset, length: length)
                : .zeros(requestID: id, offset: offset, length: length)
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
/// `.prefixDiffers` if not. With `blocks`, the fetcher holds another
/// version of the file (edited in place): the server sends `.same` instead
/// of the bytes of each block whose SHA-256 is the fetcher's. With
/// `takesZeros`, runs of zeros may come as `.zeros` instead of data.
public struct FetchRequest: Equatable, Sendable {
    public var requestID: UInt32
    public var path: String
    public var version: UInt64
    public var offset: UInt64
    public var length: UInt64
    public var noRedirect: Bool
    public var prefixDigest: [UInt8]?
    public var blocks: BlockDigests?
    public var takesZeros: Bool

    static let noRedirectFlag: UInt8 = 1
    static let prefixDigestFlag: UInt8 = 2
    static let blocksFlag: UInt8 = 4
    static let takesZerosFlag: UInt8 = 8

    public init(requestID: UInt32, path: String, version: UInt64, offset: UInt64 = 0, length: UInt64 = .max,
                noRedirect: Bool = false, prefixDigest: [UInt8]? = nil, blocks: BlockDigests? = nil,
                takesZeros: Bool = false) {
        self.requestID = requestID
        self.path = path
        self.version = version
        self.offset = offset
        self.length = length
        self.noRedirect = noRedirect
        self.prefixDigest = prefixDigest
        self.blocks = blocks
        self.takesZeros = takesZeros
    }
}

/// The SHA-256 of each block of the version a fetcher holds (block `i` is
/// bytes `i*blockSize..<(i+1)*blockSize`, the last one maybe shorter), so
/// that a file edited in place moves only its changed blocks. A block
/// that matches is copied from the fetcher's own file; the index's SHA-256
/// still checks the whole file at the end.
public struct BlockDigests: Equatable, Sendable {
    public var blockSize: UInt32
    /// `count` SHA-256 digests, one after the other.
    public var digests: [UInt8]

    public static let digestLength = SHA256.digestLength
    /// Block sizes a request may name: 64 KiB to 16 MiB, powers of two.
    public static let blockSizes = (64 << 10)...(16 << 20)
    /// At most this many blocks (256 KiB of digests): a larger file uses
    /// larger blocks.
    public static let maxCount: UInt32 = 8192

    public init(blockSize: UInt32, digests: [UInt8]) {
        precondition(BlockDigests.blockSizes.contains(Int(blockSize)) && blockSize.nonzeroBitCount == 1
                     && digests.count % BlockDigests.digestLength == 0, "block digests")
        self.blockSize = blockSize
        self.digests = digests
    }

    public var count: Int { digests.count / BlockDigests.digestLength }

    /// The smallest block size, at least 128 KiB, with at most `maxCount`
    /// blocks for a file of `size` bytes; nil when the file is too large.
    public static func blockSize(for size: UInt64) -> UInt32? {
        var block: UInt64 = 128 << 10
        while (size + block - 1) / block > UInt64(maxCount) {
            block *= 2
            if block > UInt64(blockSizes.upperBound) { return nil }
        }
        return UInt32(block)
    }

    /// Whether `bytes`, block `index` of the server's version, has the digest
    /// the fetcher sent for that block.
    public func matches(_ bytes: UnsafeRawBufferPointer, block index: Int) -> Bool {
        guard index >= 0, index < count else { return false }
        let digest = SHA256.hash(bytes)
        let start = index * BlockDigests.digestLength
        return digest.elementsEqual(digests[start..<start + BlockDigests.digestLength])
    }

    /// Whether block `index` has the same digest here as in `other` (the
    /// same block size; a block either lacks differs).
    public func sameBlock(_ index: Int, as other: BlockDigests) -> Bool {
        guard blockSize == other.blockSize, index >= 0, index < count, index < other.count else { return false }
        let start = index * BlockDigests.digestLength
        return digests[start..<start + BlockDigests.digestLength]
            .elementsEqual(other.digests[start..<start + BlockDigests.digestLength])
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
    /// How much of the file the server's disk holds (at most `size`): less
    /// for a sparse file, whose holes the fetcher keeps as holes too, so it
    /// needs that much free space, not `size`. A relay passes on what its
    /// own holder said; `size` when unknown.
    public var allocated: UInt64

    public init(requestID: UInt32, status: FetchStatus, size: UInt64 = 0, allocated: UInt64? = nil, message: String = "") {
        self.requestID = requestID
        self.status = status
        self.size = size
        self.allocated = min(allocated ?? size, size)
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
