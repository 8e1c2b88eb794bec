#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An errno from a POSIX call, with the operation and path it concerns, so an
/// operator reading the log knows what failed where. Any thread.
public struct SystemError: Error, Hashable, CustomStringConvertible, Sendable {
    public var errno: Int32
    public var operation: String
    public var path: String?

    public init(errno: Int32, operation: String, path: String? = nil) {
        self.errno = errno
        self.operation = operation
        self.path = path
    }

    public var description: String {
        let reason = String(cString: strerror(errno))
        if let path { return "\(operation) \(path): \(reason)" }
        return "\(operation): \(reason)"
    }

    /// True when the disk (or quota) is full: callers keep old data and retry later.
    public var isNoSpace: Bool { errno == ENOSPC || errno == EDQUOT }
    public var isNotFound: Bool { errno == ENOENT }
}

/// Runs a POSIX call that returns -1 and sets errno on failure, retrying on
/// EINTR, and turns failure into a `SystemError`.
@inline(__always)
func valueOrErrno<T: FixedWidthInteger>(_ operation: String, path: String? = nil, _ call: () -> T) throws -> T {
    while true {
        let result = call()
        if result != -1 { return result }
        let e = Glibc.errno
        if e == EINTR { continue }
        throw SystemError(errno: e, operation: operation, path: path)
    }
}
