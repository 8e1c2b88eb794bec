/// A path as a dictionary key and sort key of the index: compared by its
/// UTF-8 bytes. Swift's `String ==` and `<` follow Unicode canonical
/// equivalence, which would merge two distinct Linux names ("é" precomposed
/// and decomposed) into one record; byte order is also what every node
/// computes identically and what `ls`-like tools show. A plain value.
public struct PathKey: Hashable, Comparable, Sendable {
    public let path: String
    /// For ASCII strings Unicode order and equality are byte order and
    /// equality, and `String`'s own comparison (a memcmp) is much faster than
    /// walking the UTF-8 view; most paths are ASCII.
    private let isASCII: Bool

    public init(_ path: String) {
        self.path = path
        isASCII = path.utf8.allSatisfy { $0 < 0x80 }
    }

    // String's hash is consistent with byte equality (byte-equal strings are
    // canonically equal, hence hash equal) and is the fastest hash available.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(path)
    }

    public static func == (lhs: PathKey, rhs: PathKey) -> Bool {
        if lhs.isASCII && rhs.isASCII { return lhs.path == rhs.path }
        return lhs.path.utf8.count == rhs.path.utf8.count && lhs.path == rhs.path
            && lhs.path.utf8.elementsEqual(rhs.path.utf8)
    }

    public static func < (lhs: PathKey, rhs: PathKey) -> Bool {
        if lhs.isASCII && rhs.isASCII { return lhs.path < rhs.path }
        return lhs.path.utf8.lexicographicallyPrecedes(rhs.path.utf8)
    }
}
