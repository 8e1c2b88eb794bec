/// The rules for a key of the replicated index: a relative path inside the
/// synced directory. Checked when a change is proposed, when a command is
/// decoded and again when it is applied. Pure; usable from any thread.
///
/// Paths are compared and stored as their UTF-8 bytes and never rewritten
/// (no Unicode normalisation): on Linux a name is bytes, and two names that
/// Unicode calls equivalent are two different files. A name that is not valid
/// UTF-8 cannot be represented at all; the scanner skips it with a log line.
/// Control characters other than NUL are legal in Linux names and are synced;
/// messages escape them.
public enum IndexPath {
    /// Longest path in bytes (Linux PATH_MAX).
    public static let maxBytes = 4096
    /// Longest component in bytes (Linux NAME_MAX).
    public static let maxComponentBytes = 255
    /// The state directory at the root of the synced directory; never synced.
    public static let stateDirectoryName = ".nsync"

    /// Returns `path` unchanged when it is a valid index key; throws
    /// `IndexPathError` saying what is wrong otherwise.
    @discardableResult
    public static func validate(_ path: String) throws -> String {
        if let error = violation(in: path) { throw error }
        return path
    }

    /// What is wrong with `path`, or nil when it is a valid index key.
    public static func violation(in path: String) -> IndexPathError? {
        let utf8 = path.utf8
        let total = utf8.count
        if total == 0 { return .empty }
        if total > maxBytes { return .tooLong(path: path, bytes: total) }
        if utf8.first == slash { return .absolute(path: path) }

        var componentLength = 0
        var componentDots = 0
        var isFirstComponent = true
        var firstIsStateDirectory = false
        var stateName = stateDirectoryName.utf8.makeIterator()
        var matchesStateName = true

        func endComponent() -> IndexPathError? {
            if componentLength == 0 { return .emptyComponent(path: path) }
            if componentDots == componentLength && componentLength <= 2 { return .dotComponent(path: path) }
            if componentLength > maxComponentBytes {
                return .componentTooLong(path: path, bytes: componentLength)
            }
            if isFirstComponent {
                firstIsStateDirectory = matchesStateName && stateName.next() == nil
                isFirstComponent = false
            }
            componentLength = 0
            componentDots = 0
            return nil
        }

        for byte in utf8 {
            if byte == 0 { return .containsNUL(path: path) }
            if byte == slash {
                if let error = endComponent() { return error }
                continue
            }
            componentLength += 1
            if byte == dot { componentDots += 1 }
            if isFirstComponent && matchesStateName {
                matchesStateName = stateName.next() == byte
            }
        }
        if let error = endComponent() { return error }
        if firstIsStateDirectory { return .insideStateDirectory(path: path) }
        return nil
    }

    private static let slash = UInt8(ascii: "/")
    private static let dot = UInt8(ascii: ".")
}

/// Why a path cannot be an index key. The file it names is not synced; the
/// description tells the operator what to rename.
public enum IndexPathError: Error, Equatable, CustomStringConvertible, Sendable {
    case empty
    case tooLong(path: String, bytes: Int)
    case absolute(path: String)
    case emptyComponent(path: String)
    case dotComponent(path: String)
    case componentTooLong(path: String, bytes: Int)
    case containsNUL(path: String)
    case insideStateDirectory(path: String)

    public var description: String {
        switch self {
        case .empty:
            return "empty path: an index path names a file inside the synced directory"
        case let .tooLong(path, bytes):
            return "path \(Self.shown(path)) is \(bytes) bytes long; the limit is \(IndexPath.maxBytes): shorten it to sync it"
        case let .absolute(path):
            return "path \(Self.shown(path)) is absolute; index paths are relative to the synced directory"
        case let .emptyComponent(path):
            return "path \(Self.shown(path)) has an empty component (a leading, trailing or doubled '/')"
        case let .dotComponent(path):
            return "path \(Self.shown(path)) has a '.' or '..' component; index paths must stay inside the synced directory"
        case let .componentTooLong(path, bytes):
            return "path \(Self.shown(path)) has a \(bytes)-byte component; the limit is \(IndexPath.maxComponentBytes): rename it to sync it"
        case let .containsNUL(path):
            return "path \(Self.shown(path)) contains a NUL byte"
        case let .insideStateDirectory(path):
            return "path \(Self.shown(path)) is inside \(IndexPath.stateDirectoryName)/, nsyncd's state directory, which is never synced"
        }
    }

    /// The path quoted and escaped, cut to a readable length.
    private static func shown(_ path: String) -> String {
        let limit = 200
        if path.utf8.count <= limit { return DiagnosticText.quoted(path) }
        return DiagnosticText.quoted(String(decoding: path.utf8.prefix(limit), as: UTF8.self)) + "…"
    }
}
