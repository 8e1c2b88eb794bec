/// A path as a dictionary key and sort key of the index: compared by its
/// UTF-8 bytes. Swift's `String ==` and `<` follow Unicode canonical
/// equivalence, which would merge two distinct Linux names ("é" precomposed
/// and decomposed) into one record; byte order is also what every node
/// computes identically and what `ls`-like tools show. A plain value.
struct PathKey: Hashable, Comparable, Sendable {
    let path: String

    init(_ path: String) { self.path = path }

    // String's hash is consistent with byte equality (byte-equal strings are
    // canonically equal, hence hash equal) and is the fastest hash available.
    func hash(into hasher: inout Hasher) {
        hasher.combine(path)
    }

    static func == (lhs: PathKey, rhs: PathKey) -> Bool {
        lhs.path.utf8.count == rhs.path.utf8.count && lhs.path == rhs.path
            && lhs.path.utf8.elementsEqual(rhs.path.utf8)
    }

    static func < (lhs: PathKey, rhs: PathKey) -> Bool {
        lhs.path.utf8.lexicographicallyPrecedes(rhs.path.utf8)
    }
}
