/// What a path is in the replicated index. `deleted` is a tombstone: it stays
/// until every member has removed the file, so a node that was away learns of
/// the deletion instead of re-announcing its stale copy.
public enum FileKind: UInt8, Sendable, CustomStringConvertible {
    case file = 1
    case directory = 2
    case symlink = 3
    case deleted = 4

    /// True for kinds that exist on disk (everything but a tombstone).
    public var isLive: Bool { self != .deleted }

    public var description: String {
        switch self {
        case .file: "file"
        case .directory: "directory"
        case .symlink: "symlink"
        case .deleted: "deleted"
        }
    }
}

/// The committed state of one path: the value of the replicated index.
/// A plain value; the index that owns it lives on the loop thread.
public struct FileRecord: Equatable, Sendable {
    /// Relative path, valid per `IndexPath.validate`.
    public var path: String
    /// The Raft index of the entry that committed this state: the version a
    /// proposer names as its base when it changes the path again.
    public var version: UInt64
    public var kind: FileKind
    /// Content length in bytes (files only; 0 otherwise).
    public var size: UInt64
    /// Permission bits only (`0o7777` mask); 0 for tombstones. What a
    /// node announces holds `syncedModeBits` only; an install applies
    /// `modeToInstall` whatever a record says.
    public var mode: UInt32
    /// Modification time, nanoseconds since the Unix epoch (for a tombstone:
    /// when the deletion was seen).
    public var mtime: Int64
    /// SHA-256 of the content for files (32 bytes); empty otherwise.
    public var hash: [UInt8]
    /// Symlink target text for symlinks; empty otherwise.
    public var target: String
    /// The node whose change committed this state.
    public var origin: NodeName
    /// Nodes that hold exactly this version on disk (for a tombstone: that have
    /// removed the file), hence can serve it.
    public var holders: Set<NodeName>

    public init(
        path: String, version: UInt64, kind: FileKind, size: UInt64 = 0, mode: UInt32 = 0,
        mtime: Int64 = 0, hash: [UInt8] = [], target: String = "", origin: NodeName,
        holders: Set<NodeName> = []
    ) {
        self.path = path
        self.version = version
        self.kind = kind
        self.size = size
        self.mode = mode
        self.mtime = mtime
        self.hash = hash
        self.target = target
        self.origin = origin
        self.holders = holders
    }

    public var isTombstone: Bool { kind == .deleted }

    /// Field-wise equality, comparing path and target by bytes (not by Unicode
    /// equivalence: those are different names on Linux).
    public static func == (lhs: FileRecord, rhs: FileRecord) -> Bool {
        lhs.version == rhs.version && lhs.kind == rhs.kind && lhs.size == rhs.size
            && lhs.mode == rhs.mode && lhs.mtime == rhs.mtime && lhs.hash == rhs.hash
            && lhs.origin == rhs.origin && lhs.holders == rhs.holders
            && lhs.path.utf8.elementsEqual(rhs.path.utf8) && lhs.target.utf8.elementsEqual(rhs.target.utf8)
    }
}

/// Content identity, shared by records and proposed changes: two states are
/// the same content when a node holding one already has the other on disk
/// (mtime may differ). Kind, mode and, by kind, hash and size (files) or
/// target bytes (symlinks) must be equal; all tombstones are the same.
func isSameContent(
    _ kind: FileKind, _ size: UInt64, _ mode: UInt32, _ hash: [UInt8], _ target: String,
    as other: FileRecord
) -> Bool {
    guard kind == other.kind else { return false }
    switch kind {
    case .deleted:
        return true
    case .directory:
        return mode == other.mode
    case .file:
        return mode == other.mode && size == other.size && hash == other.hash
    case .symlink:
        // Bytes, not String ==: canonically equivalent targets are different links.
        return mode == other.mode && target.utf8.elementsEqual(other.target.utf8)
    }
}

extension FileRecord {
    /// The mode bits nsyncd syncs: read, write and execute for all, and the
    /// sticky bit. Never set-user-ID or set-group-ID (as Syncthing): files
    /// are installed as the daemon's user, so a daemon run as root would
    /// turn any user's setuid program on one node into root's on the others.
    public static let syncedModeBits: UInt32 = 0o1777

    /// `mode` without the bits that do not sync (a record announced by an
    /// older or hostile node may carry them).
    public var modeToInstall: UInt32 { mode & Self.syncedModeBits }
}

extension FileStatus {
    /// The mode bits that sync (`FileRecord.syncedModeBits`), as a look
    /// records them: what a stat is compared by with a `LocalFile`.
    public var syncedMode: UInt32 { mode & FileRecord.syncedModeBits }
    /// The bits that do not sync (setuid, setgid): a directory keeps its
    /// own when its mode syncs.
    public var localModeBits: UInt32 { mode & ~FileRecord.syncedModeBits }
}
