/// A proposed new state for one path, as a compare-and-set on the version the
/// proposer last saw. A plain value; built by the reconciler, applied by
/// `FileIndex` on the loop thread.
public struct PutChange: Equatable, Sendable {
    public var path: String
    public var kind: FileKind
    public var size: UInt64
    public var mode: UInt32
    public var mtime: Int64
    public var hash: [UInt8]
    public var target: String
    /// The version of `path` the proposer last had (0 = it had none).
    public var baseVersion: UInt64

    public init(
        path: String, kind: FileKind, size: UInt64 = 0, mode: UInt32 = 0, mtime: Int64 = 0,
        hash: [UInt8] = [], target: String = "", baseVersion: UInt64
    ) {
        self.path = path
        self.kind = kind
        self.size = size
        self.mode = mode
        self.mtime = mtime
        self.hash = hash
        self.target = target
        self.baseVersion = baseVersion
    }

    public static func file(
        _ path: String, size: UInt64, mode: UInt32, mtime: Int64, hash: [UInt8], base: UInt64
    ) -> PutChange {
        PutChange(path: path, kind: .file, size: size, mode: mode, mtime: mtime, hash: hash, baseVersion: base)
    }

    public static func directory(_ path: String, mode: UInt32, mtime: Int64, base: UInt64) -> PutChange {
        PutChange(path: path, kind: .directory, mode: mode, mtime: mtime, baseVersion: base)
    }

    public static func symlink(_ path: String, target: String, mtime: Int64, base: UInt64) -> PutChange {
        PutChange(path: path, kind: .symlink, mode: 0o777, mtime: mtime, target: target, baseVersion: base)
    }

    public static func deletion(_ path: String, mtime: Int64, base: UInt64) -> PutChange {
        PutChange(path: path, kind: .deleted, mtime: mtime, baseVersion: base)
    }

    /// Longest symlink target in bytes (Linux PATH_MAX).
    public static let maxTargetBytes = 4096
    /// Bytes in a content hash (SHA-256).
    public static let hashSize = 32

    /// Why this change cannot be applied, or nil. Size is not checked for
    /// non-files: it is meaningless there and stored as 0.
    public func violation() -> String? {
        if let error = IndexPath.violation(in: path) { return error.description }
        if mode & ~0o7777 != 0 {
            return "mode 0o\(String(mode, radix: 8)) of \(DiagnosticText.quoted(path)) has bits outside the permission mask 0o7777"
        }
        switch kind {
        case .file:
            if hash.count != Self.hashSize {
                return "file \(DiagnosticText.quoted(path)) has a \(hash.count)-byte hash; a SHA-256 has \(Self.hashSize)"
            }
        case .directory, .symlink, .deleted:
            if !hash.isEmpty { return "\(kind) \(DiagnosticText.quoted(path)) carries a content hash" }
        }
        if kind == .symlink {
            let bytes = target.utf8
            if bytes.isEmpty { return "symlink \(DiagnosticText.quoted(path)) has an empty target" }
            if bytes.count > Self.maxTargetBytes {
                return "symlink \(DiagnosticText.quoted(path)) has a \(bytes.count)-byte target; the limit is \(Self.maxTargetBytes)"
            }
            if bytes.contains(0) { return "symlink \(DiagnosticText.quoted(path)) has a NUL byte in its target" }
        } else if !target.isEmpty {
            return "\(kind) \(DiagnosticText.quoted(path)) carries a symlink target"
        }
        return nil
    }
}

/// One change to the index inside a command. A plain value.
public enum IndexChange: Equatable, Sendable {
    /// Set the state of a path (see `FileIndex.apply` for who wins).
    case put(PutChange)
    /// "The origin node now holds `version` of `path` on disk."
    case hold(path: String, version: UInt64)
    /// Remove a tombstone that every member holds (proposed by the leader).
    case forget(path: String, version: UInt64)

    public var path: String {
        switch self {
        case let .put(put): put.path
        case let .hold(path, _), let .forget(path, _): path
        }
    }
}

/// The payload of one Raft entry for the index: a batch of changes, all
/// proposed by `origin`. Batching is what makes many small files cheap: one
/// entry, one fsync, thousands of changes. A plain value.
public struct IndexCommand: Equatable, Sendable {
    /// Most changes in one command; a decoder refuses more.
    public static let maxChanges = 100_000

    /// The proposing node: becomes the origin/holder of what it changes.
    public var origin: NodeName
    public var changes: [IndexChange]

    public init(origin: NodeName, changes: [IndexChange]) {
        self.origin = origin
        self.changes = changes
    }
}
