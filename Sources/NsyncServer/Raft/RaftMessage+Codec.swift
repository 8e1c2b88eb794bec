/// Binary encoding of `RaftMessage` for the cluster channel's frames. Pure:
/// bytes in, a message or a `WireError` out. The decoder trusts nothing: every
/// length and count is checked against a cap and against the bytes present,
/// so a hostile frame costs at most its own size and never crashes the daemon.
///
/// Layout (big-endian): u8 kind, u16-prefixed `from` and `to`, u64 term, then
/// the kind's fields. Entries are u64 term, u64 index, u8 kind, u32-prefixed data.
extension RaftMessage {
    private enum Tag: UInt8 {
        case preVote = 1, preVoteResponse, vote, voteResponse, append, appendResponse
        case heartbeat, heartbeatResponse, installSnapshot, installSnapshotResponse
        case propose, proposeResponse
    }

    /// Smallest encoding of one entry (no data), for bounding entry counts.
    private static let minEntryBytes = 8 + 8 + 1 + 4

    public func encode(into buffer: inout ByteBuffer) {
        switch kind {
        case let .preVote(lastIndex, lastTerm):
            writeHeader(.preVote, into: &buffer)
            buffer.writeInteger(lastIndex)
            buffer.writeInteger(lastTerm)
        case let .preVoteResponse(granted):
            writeHeader(.preVoteResponse, into: &buffer)
            buffer.writeInteger(UInt8(granted ? 1 : 0))
        case let .vote(lastIndex, lastTerm):
            writeHeader(.vote, into: &buffer)
            buffer.writeInteger(lastIndex)
            buffer.writeInteger(lastTerm)
        case let .voteResponse(granted):
            writeHeader(.voteResponse, into: &buffer)
            buffer.writeInteger(UInt8(granted ? 1 : 0))
        case let .append(prevIndex, prevTerm, entries, commit):
            writeHeader(.append, into: &buffer)
            buffer.writeInteger(prevIndex)
            buffer.writeInteger(prevTerm)
            buffer.writeInteger(commit)
            buffer.writeInteger(UInt32(entries.count))
            for entry in entries {
                buffer.writeInteger(entry.term)
                buffer.writeInteger(entry.index)
                buffer.writeInteger(entry.kind.rawValue)
                buffer.writeLongBytes(entry.data)
            }
        case let .appendResponse(result):
            writeHeader(.appendResponse, into: &buffer)
            switch result {
            case let .accepted(matchIndex):
                buffer.writeInteger(UInt8(0))
                buffer.writeInteger(matchIndex)
            case let .rejected(rejectedIndex, hintIndex, hintTerm):
                buffer.writeInteger(UInt8(1))
                buffer.writeInteger(rejectedIndex)
                buffer.writeInteger(hintIndex)
                buffer.writeInteger(hintTerm)
            }
        case let .heartbeat(commit):
            writeHeader(.heartbeat, into: &buffer)
            buffer.writeInteger(commit)
        case .heartbeatResponse:
            writeHeader(.heartbeatResponse, into: &buffer)
        case let .installSnapshot(chunk):
            writeHeader(.installSnapshot, into: &buffer)
            buffer.writeInteger(chunk.metadata.index)
            buffer.writeInteger(chunk.metadata.term)
            buffer.writeInteger(UInt16(chunk.metadata.members.count))
            for member in chunk.metadata.members { buffer.writeShortString(member) }
            buffer.writeInteger(chunk.offset)
            buffer.writeInteger(UInt8(chunk.done ? 1 : 0))
            buffer.writeLongBytes(chunk.data)
        case let .installSnapshotResponse(index, term, nextOffset):
            writeHeader(.installSnapshotResponse, into: &buffer)
            buffer.writeInteger(index)
            buffer.writeInteger(term)
            buffer.writeInteger(nextOffset)
        case let .propose(id, data):
            writeHeader(.propose, into: &buffer)
            buffer.writeInteger(id.value)
            buffer.writeLongBytes(data)
        case let .proposeResponse(id, result):
            writeHeader(.proposeResponse, into: &buffer)
            buffer.writeInteger(id.value)
            switch result {
            case let .appended(index, term):
                buffer.writeInteger(UInt8(0))
                buffer.writeInteger(index)
                buffer.writeInteger(term)
            case let .failed(reason):
                buffer.writeInteger(UInt8(1))
                buffer.writeInteger(reason.rawValue)
            }
        }
    }

    /// The message's encoding as one byte array (a frame payload).
    public func encoded() -> [UInt8] {
        var buffer = ByteBuffer(capacity: 64)
        encode(into: &buffer)
        return buffer.bytes
    }

    /// Decodes one message that occupies every readable byte of `buffer`
    /// (a frame payload). Throws on anything malformed, truncated or trailing.
    public static func decode(from buffer: inout ByteBuffer) throws -> RaftMessage {
        let rawTag: UInt8 = try buffer.readInteger()
        guard let tag = Tag(rawValue: rawTag) else { throw WireError.unknownType(rawTag) }
        let from = try readName(&buffer)
        let to = try readName(&buffer)
        let term: UInt64 = try buffer.readInteger()
        let kind: Kind
        switch tag {
        case .preVote:
            kind = .preVote(lastIndex: try buffer.readInteger(), lastTerm: try buffer.readInteger())
        case .preVoteResponse:
            kind = .preVoteResponse(granted: try readBool(&buffer))
        case .vote:
            kind = .vote(lastIndex: try buffer.readInteger(), lastTerm: try buffer.readInteger())
        case .voteResponse:
            kind = .voteResponse(granted: try readBool(&buffer))
        case .append:
            kind = try readAppend(&buffer)
        case .appendResponse:
            switch try buffer.readInteger(as: UInt8.self) {
            case 0:
                kind = .appendResponse(.accepted(matchIndex: try buffer.readInteger()))
            case 1:
                kind = .appendResponse(.rejected(
                    rejectedIndex: try buffer.readInteger(), hintIndex: try buffer.readInteger(),
                    hintTerm: try buffer.readInteger()))
            case let other:
                throw WireError.malformed("append response variant \(other)")
            }
        case .heartbeat:
            kind = .heartbeat(commit: try buffer.readInteger())
        case .heartbeatResponse:
            kind = .heartbeatResponse
        case .installSnapshot:
            kind = .installSnapshot(try readChunk(&buffer))
        case .installSnapshotResponse:
            kind = .installSnapshotResponse(
                index: try buffer.readInteger(), term: try buffer.readInteger(), nextOffset: try buffer.readInteger())
        case .propose:
            let id = ProposalID(try buffer.readInteger())
            kind = .propose(id: id, data: try buffer.readLongBytes(limit: min(maxDataBytes, buffer.readableBytes)))
        case .proposeResponse:
            let id = ProposalID(try buffer.readInteger())
            switch try buffer.readInteger(as: UInt8.self) {
            case 0:
                kind = .proposeResponse(id: id, result: .appended(index: try buffer.readInteger(), term: try buffer.readInteger()))
            case 1:
                let raw: UInt8 = try buffer.readInteger()
                guard let reason = ProposalFailure(rawValue: raw) else {
                    throw WireError.malformed("proposal failure reason \(raw)")
                }
                kind = .proposeResponse(id: id, result: .failed(reason))
            case let other:
                throw WireError.malformed("propose response variant \(other)")
            }
        }
        guard buffer.readableBytes == 0 else {
            throw WireError.malformed("\(buffer.readableBytes) trailing bytes after raft message")
        }
        return RaftMessage(from: from, to: to, term: term, kind: kind)
    }

    private func writeHeader(_ tag: Tag, into buffer: inout ByteBuffer) {
        buffer.writeInteger(tag.rawValue)
        buffer.writeShortString(from)
        buffer.writeShortString(to)
        buffer.writeInteger(term)
    }

    private static func readName(_ buffer: inout ByteBuffer) throws -> NodeName {
        let length = Int(try buffer.peekInteger(as: UInt16.self))
        guard length > 0 else { throw WireError.malformed("empty node name") }
        guard length <= maxNameBytes else { throw WireError.tooLarge(length, limit: maxNameBytes) }
        return try buffer.readShortString()
    }

    private static func readBool(_ buffer: inout ByteBuffer) throws -> Bool {
        switch try buffer.readInteger(as: UInt8.self) {
        case 0: return false
        case 1: return true
        case let other: throw WireError.malformed("boolean byte \(other)")
        }
    }

    private static func readAppend(_ buffer: inout ByteBuffer) throws -> Kind {
        let prevIndex: UInt64 = try buffer.readInteger()
        let prevTerm: UInt64 = try buffer.readInteger()
        let commit: UInt64 = try buffer.readInteger()
        let count = Int(try buffer.readInteger(as: UInt32.self))
        guard count <= maxEntries else { throw WireError.tooLarge(count, limit: maxEntries) }
        guard count <= buffer.readableBytes / minEntryBytes else {
            throw WireError.truncated(needed: count * minEntryBytes, available: buffer.readableBytes)
        }
        if count > 0 && prevIndex > UInt64.max - UInt64(count) {
            throw WireError.malformed("entry index overflows")
        }
        var entries: [RaftEntry] = []
        entries.reserveCapacity(count)
        for i in 0..<count {
            let term: UInt64 = try buffer.readInteger()
            let index: UInt64 = try buffer.readInteger()
            let rawKind: UInt8 = try buffer.readInteger()
            guard let entryKind = RaftEntry.Kind(rawValue: rawKind) else {
                throw WireError.malformed("entry kind \(rawKind)")
            }
            guard index == prevIndex + 1 + UInt64(i) else {
                throw WireError.malformed("entry index \(index) where \(prevIndex + 1 + UInt64(i)) was due")
            }
            let data = try buffer.readLongBytes(limit: min(maxDataBytes, buffer.readableBytes))
            entries.append(RaftEntry(term: term, index: index, kind: entryKind, data: data))
        }
        return .append(prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: commit)
    }

    private static func readChunk(_ buffer: inout ByteBuffer) throws -> SnapshotChunk {
        let index: UInt64 = try buffer.readInteger()
        let term: UInt64 = try buffer.readInteger()
        let memberCount = Int(try buffer.readInteger(as: UInt16.self))
        guard memberCount <= maxMembers else { throw WireError.tooLarge(memberCount, limit: maxMembers) }
        var members: [NodeName] = []
        members.reserveCapacity(min(memberCount, buffer.readableBytes / 3))
        for _ in 0..<memberCount { members.append(try readName(&buffer)) }
        let offset: UInt64 = try buffer.readInteger()
        let done = try readBool(&buffer)
        let data = try buffer.readLongBytes(limit: min(maxDataBytes, buffer.readableBytes))
        return SnapshotChunk(
            metadata: SnapshotMetadata(index: index, term: term, members: members),
            offset: offset, data: data, done: done)
    }
}
