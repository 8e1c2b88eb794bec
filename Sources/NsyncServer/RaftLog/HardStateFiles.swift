/// The term, vote and commit index on disk, in two alternating files
/// (`metadata1`, `metadata2`), as cowsql does: each write goes to the file
/// that does *not* hold the last durable state, carrying a higher sequence
/// number and a CRC, so a crash in the middle of a write leaves the other
/// file intact and recovery takes the valid file with the higher sequence.
/// This costs one pwrite and one fdatasync of a file that exists already —
/// cheaper than write-temp + fsync + rename + fsync-directory.
///
/// Writes alternate only after an fdatasync: until then every write goes to
/// the same pending file, so two writes between syncs can never overwrite
/// the only durable copy.
///
///     metadata = "NSYNCHSF" | version u32 | sequence u64 | term u64 | commit u64
///                | hasVote u8 | vote (u16 length + UTF-8) | crc32c u32 (of everything before)
///
/// Used by `RaftStorage`, so by one thread at a time.
struct HardStateFiles {
    static let names = ["metadata1", "metadata2"]
    static let magic: [UInt8] = Array("NSYNCHSF".utf8)
    static let version: UInt32 = 1

    let directory: String
    private var descriptors: [FileDescriptor]
    private var sequence: UInt64
    /// Index into `names` of the file holding the last durable state.
    private var durableSlot: Int
    /// The state last made durable (term and vote must match what Raft acted on).
    private(set) var durable: HardState
    /// The state last written, durable or not.
    private(set) var written: HardState

    /// What recovery found.
    struct Loaded {
        var files: HardStateFiles
        var state: HardState
        var notes: [String]
    }

    /// Reads both files and keeps the newest valid one. With neither present,
    /// creates both holding an empty state when `mayCreate` (a new node), and
    /// refuses otherwise (the log exists, so its term and vote were lost).
    static func open(directory: String, mayCreate: Bool) throws -> Loaded {
        var notes: [String] = []
        var found: [(slot: Int, sequence: UInt64, state: HardState)] = []
        var problems: [(name: String, offset: Int64, reason: String)] = []
        var missing = 0
        for (slot, name) in names.enumerated() {
            let path = directory + "/" + name
            guard FileDescriptor.exists(path) else {
                missing += 1
                continue
            }
            let fd = try FileDescriptor.open(path, .readOnly)
            let bytes = try fd.closeAfter { try fd.readAll() }
            switch decode(bytes) {
            case let .success((sequence, state)):
                found.append((slot, sequence, state))
            case let .failure(problem):
                if case let .unsupportedVersion(_, version) = problem.kind {
                    throw RaftStorageError.unsupportedVersion(file: path, version: version)
                }
                problems.append((name, problem.offset, problem.reason))
            }
        }
        if missing == names.count {
            guard mayCreate else {
                throw RaftStorageError.gap(
                    directory: directory,
                    reason: "metadata1 and metadata2 (term and vote) are missing while log or snapshot files exist")
            }
            var files = HardStateFiles(directory: directory)
            try files.createBoth()
            return Loaded(files: files, state: HardState(), notes: [])
        }
        guard let newest = found.max(by: { $0.sequence < $1.sequence }) else {
            let first = problems[0]
            throw RaftStorageError.corrupt(
                directory: directory, file: first.name, offset: first.offset,
                reason: "no readable copy of the term and vote: "
                    + problems.map { "\($0.name): \($0.reason)" }.joined(separator: "; "))
        }
        for problem in problems {
            // Expected after a crash during a write: the other file holds the state.
            notes.append("ignored torn \(problem.name) (\(problem.reason)); using \(names[newest.slot]) "
                + "(sequence \(newest.sequence))")
        }
        var descriptors: [FileDescriptor] = []
        for name in names {
            descriptors.append(try FileDescriptor.open(directory + "/" + name, .readWrite, options: .create, permissions: 0o600))
        }
        let files = HardStateFiles(
            directory: directory, descriptors: descriptors, sequence: newest.sequence,
            durableSlot: newest.slot, durable: newest.state, written: newest.state)
        return Loaded(files: files, state: newest.state, notes: notes)
    }

    private init(directory: String) {
        self.init(directory: directory, descriptors: [], sequence: 0, durableSlot: 0,
                  durable: HardState(), written: HardState())
    }

    private init(directory: String, descriptors: [FileDescriptor], sequence: UInt64, durableSlot: Int,
                 durable: HardState, written: HardState) {
        self.directory = directory
        self.descriptors = descriptors
        self.sequence = sequence
        self.durableSlot = durableSlot
        self.durable = durable
        self.written = written
    }

    /// A new node: both files hold the empty state, made durable with their directory entries.
    private mutating func createBoth() throws {
        descriptors = []
        for (slot, name) in Self.names.enumerated() {
            let fd = try FileDescriptor.open(
                directory + "/" + name, .readWrite, options: [.create, .truncate], permissions: 0o600)
            descriptors.append(fd)
            try fd.write(all: Self.encode(HardState(), sequence: UInt64(slot)), at: 0)
            try fd.syncData()
        }
        try FileDescriptor.syncDirectory(directory)
        sequence = 1
        durableSlot = 1
    }

    /// Writes `state` to the pending file; with `durable`, fdatasyncs it and
    /// makes it the file the next write must not touch.
    mutating func write(_ state: HardState, durable makeDurable: Bool) throws {
        let slot = 1 - durableSlot
        sequence += 1
        try descriptors[slot].write(all: Self.encode(state, sequence: sequence), at: 0)
        written = state
        if makeDurable {
            try descriptors[slot].syncData()
            durableSlot = slot
            durable = state
        }
    }

    /// Closes both files; idempotent.
    mutating func close() {
        for fd in descriptors { try? fd.close() }
        descriptors = []
    }

    // MARK: format

    static func encode(_ state: HardState, sequence: UInt64) -> [UInt8] {
        var buffer = ByteBuffer(capacity: 64)
        buffer.writeBytes(magic)
        buffer.writeInteger(version)
        buffer.writeInteger(sequence)
        buffer.writeInteger(state.term)
        buffer.writeInteger(state.commit)
        buffer.writeInteger(UInt8(state.vote == nil ? 0 : 1))
        buffer.writeShortString(state.vote ?? "")
        buffer.writeInteger(CRC32C.checksum(buffer.bytes))
        return buffer.bytes
    }

    struct Problem: Error {
        enum Kind { case damaged, unsupportedVersion(String, UInt32) }
        var kind: Kind = .damaged
        var offset: Int64
        var reason: String
    }

    /// Decodes a metadata file. Bytes after the CRC are ignored: they are
    /// left over from an earlier, longer state (a longer vote).
    static func decode(_ bytes: [UInt8]) -> Result<(UInt64, HardState), Problem> {
        var buffer = ByteBuffer(bytes: bytes)
        do {
            guard try buffer.readBytes(8) == magic else {
                return .failure(Problem(offset: 0, reason: bytes.isEmpty ? "empty file" : "bad magic"))
            }
            let version = try buffer.readInteger(as: UInt32.self)
            let sequence = try buffer.readInteger(as: UInt64.self)
            let term = try buffer.readInteger(as: UInt64.self)
            let commit = try buffer.readInteger(as: UInt64.self)
            let hasVote = try buffer.readInteger(as: UInt8.self)
            let vote = try buffer.readShortString()
            let covered = buffer.readerIndex
            let crc = try buffer.readInteger(as: UInt32.self)
            guard crc == CRC32C.checksum(bytes, in: 0..<covered) else {
                return .failure(Problem(offset: 0, reason: "bad checksum"))
            }
            guard version <= Self.version else {
                return .failure(Problem(kind: .unsupportedVersion("", version), offset: 8, reason: "version \(version)"))
            }
            guard hasVote <= 1 else { return .failure(Problem(offset: 36, reason: "bad vote flag \(hasVote)")) }
            return .success((sequence, HardState(term: term, vote: hasVote == 1 ? vote : nil, commit: commit)))
        } catch {
            return .failure(Problem(offset: Int64(buffer.readerIndex), reason: "cut short (\(error))"))
        }
    }
}
