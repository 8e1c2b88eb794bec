/// A dictionary from paths to values that tells paths apart by their bytes,
/// as the file system does: a `[String: V]` would merge "é" precomposed and
/// decomposed (Swift compares strings by canonical equivalence) and so lose
/// one of two distinct files. Same API shape as a dictionary. A plain value.
public struct PathMap<Value>: Sequence {
    private var storage: [PathKey: Value] = [:]

    public init() {}

    public subscript(path: String) -> Value? {
        get { storage[PathKey(path)] }
        set { storage[PathKey(path)] = newValue }
    }

    public subscript(path: String, default value: @autoclosure () -> Value) -> Value {
        get { storage[PathKey(path), default: value()] }
        set { storage[PathKey(path)] = newValue }
    }

    @discardableResult
    public mutating func removeValue(forKey path: String) -> Value? {
        storage.removeValue(forKey: PathKey(path))
    }

    public mutating func removeAll() { storage.removeAll() }
    public mutating func reserveCapacity(_ n: Int) { storage.reserveCapacity(n) }
    public var count: Int { storage.count }
    public var isEmpty: Bool { storage.isEmpty }
    public var keys: [String] { storage.keys.map(\.path) }
    public var values: Dictionary<PathKey, Value>.Values { storage.values }

    /// A concrete iterator, not an `AnyIterator`: boxing and a closure call
    /// per entry made walking a 300,000-path manifest several times slower.
    public struct Iterator: IteratorProtocol {
        var inner: Dictionary<PathKey, Value>.Iterator

        public mutating func next() -> (key: String, value: Value)? {
            inner.next().map { (key: $0.key.path, value: $0.value) }
        }
    }

    public func makeIterator() -> Iterator {
        Iterator(inner: storage.makeIterator())
    }

    public var underestimatedCount: Int { storage.count }
}

extension PathMap: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, Value)...) {
        for (path, value) in elements { self[path] = value }
    }
}

extension PathMap: Equatable where Value: Equatable {
    public static func == (lhs: PathMap, rhs: PathMap) -> Bool { lhs.storage == rhs.storage }
}

extension PathMap: Sendable where Value: Sendable {}

/// A set of paths told apart by their bytes (see `PathMap`). A plain value.
public struct PathSet: Sequence, Equatable, Sendable, ExpressibleByArrayLiteral {
    private var storage: Set<PathKey> = []

    public init() {}

    public init<S: Sequence>(_ paths: S) where S.Element == String {
        storage = Set(paths.map(PathKey.init))
    }

    public init(arrayLiteral paths: String...) { self.init(paths) }

    @discardableResult
    public mutating func insert(_ path: String) -> (inserted: Bool, memberAfterInsert: String) {
        let result = storage.insert(PathKey(path))
        return (result.inserted, result.memberAfterInsert.path)
    }

    @discardableResult
    public mutating func remove(_ path: String) -> String? { storage.remove(PathKey(path))?.path }

    public func contains(_ path: String) -> Bool { storage.contains(PathKey(path)) }
    public mutating func removeAll() { storage.removeAll() }
    public mutating func reserveCapacity(_ n: Int) { storage.reserveCapacity(n) }
    public var count: Int { storage.count }
    public var isEmpty: Bool { storage.isEmpty }

    public struct Iterator: IteratorProtocol {
        var inner: Set<PathKey>.Iterator

        public mutating func next() -> String? { inner.next()?.path }
    }

    public func makeIterator() -> Iterator {
        Iterator(inner: storage.makeIterator())
    }

    public var underestimatedCount: Int { storage.count }
}
