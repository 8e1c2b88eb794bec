/// The ignore rules of one synced directory: `.nsyncignore` at the top of
/// PATH, gitignore-style, plus the built-in rules. Immutable; any thread (the
/// scanner uses it on the thread pool, the watcher on the loop thread).
///
/// Semantics follow git's gitignore documentation:
/// - blank lines and lines starting with `#` are skipped; `\#` and `\!` start
///   a pattern with a literal `#` or `!`; trailing unescaped spaces are cut;
/// - `!` negates: of all patterns matching a path the last one decides;
/// - a trailing `/` matches directories only;
/// - a `/` at the start or in the middle anchors the pattern to the top of
///   PATH; otherwise it matches the last component at any depth;
/// - `*` and `?` do not cross `/`; `[a-z]`, `[!x]`, `[^x]`, `[[:digit:]]`;
///   `**/x` matches at any depth, `x/**` everything below `x`, `a/**/b` zero
///   or more directories between; `\` escapes the next character;
/// - a file below an ignored directory is ignored, whatever later patterns
///   say ("it is not possible to re-include a file if a parent directory of
///   that file is excluded").
///
/// Built-in rules: the state directory `.nsync` is never synced and this
/// cannot be negated; `.nsyncignore` itself is always synced so every node
/// applies the same rules; editor swap and backup files (`.*.swp`, `*~`,
/// `.#*`) are ignored by default — they come before the file's own lines, so
/// a user who really wants them synced can write `!*~`.
public struct IgnoreRules: Sendable {
    public static let fileName = ".nsyncignore"
    /// A larger `.nsyncignore` is not read (it is read on the event loop).
    public static let maxFileBytes = 1 << 20
    public static let stateDirectoryName = ".nsync"
    public static let editorDefaults = [".*.swp", "*~", ".#*"]

    /// Rules from `.nsyncignore` are preceded by `editorDefaults`.
    public static let defaults = IgnoreRules(text: "")

    private let rules: [IgnorePattern]

    public init(text: String) {
        var rules = IgnoreRules.editorDefaults.compactMap { IgnorePattern(line: Substring($0)) }
        // "\r\n" is one Character in Swift, so Windows line ends need naming.
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            if let pattern = IgnorePattern(line: line) { rules.append(pattern) }
        }
        self.rules = rules
    }

    /// Whether `path` (relative to PATH, `/`-separated, no leading `/`) is
    /// ignored, itself or through an ignored ancestor directory.
    public func isIgnored(path: String, isDirectory: Bool) -> Bool {
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        guard !components.isEmpty else { return false }
        if components.dropLast().contains(where: { $0 == IgnoreRules.stateDirectoryName }) { return true }
        var prefixEnd = path.startIndex
        for component in components.dropLast() {
            prefixEnd = component.endIndex
            if isIgnoredEntry(path: String(path[..<prefixEnd]), isDirectory: true) { return true }
        }
        return isIgnoredEntry(path: path, isDirectory: isDirectory)
    }

    /// Whether `path` itself is ignored, not looking at its ancestors: for
    /// walkers that never descend into an ignored directory, which makes the
    /// ancestor checks of `isIgnored` redundant.
    public func isIgnoredEntry(path: String, isDirectory: Bool) -> Bool {
        let slash = path.lastIndex(of: "/")
        let name = slash.map { path[path.index(after: $0)...] } ?? path[...]
        if name == IgnoreRules.stateDirectoryName && (isDirectory || slash == nil) { return true }
        if slash == nil && name == IgnoreRules.fileName { return false }
        let pathScalars = Array(path.unicodeScalars)
        let nameScalars = slash == nil ? pathScalars : Array(name.unicodeScalars)
        for rule in rules.reversed() {
            if rule.directoryOnly && !isDirectory { continue }
            let subject = rule.anchored ? pathScalars : nameScalars
            if Wildmatch.matches(rule.pattern, subject) { return !rule.negated }
        }
        return false
    }
}

/// One parsed line of an ignore file. Immutable value.
struct IgnorePattern: Sendable {
    var pattern: [Unicode.Scalar]
    var negated: Bool
    var directoryOnly: Bool
    /// Matched against the whole relative path rather than the last component.
    var anchored: Bool

    init?(line: Substring) {
        var text = line
        if text.isEmpty || text.hasPrefix("#") { return nil }
        negated = text.hasPrefix("!")
        if negated { text = text.dropFirst() }
        // Trailing spaces are cut unless escaped with a backslash.
        while text.hasSuffix(" ") {
            let beforeSpace = text.dropLast()
            var backslashes = 0
            var index = beforeSpace.endIndex
            while index > beforeSpace.startIndex {
                let previous = beforeSpace.index(before: index)
                guard beforeSpace[previous] == "\\" else { break }
                backslashes += 1
                index = previous
            }
            if backslashes % 2 == 1 { break }
            text = beforeSpace
        }
        directoryOnly = text.hasSuffix("/") && !text.hasSuffix("\\/")
        if directoryOnly { text = text.dropLast() }
        if text.hasPrefix("/") {
            anchored = true
            text = text.dropFirst()
        } else {
            anchored = text.contains("/")
        }
        if text.isEmpty { return nil }
        pattern = Array(text.unicodeScalars)
    }
}

/// git's wildmatch with WM_PATHNAME semantics over Unicode scalars: `*` and
/// `?` stop at `/`, `**` between slashes spans directories. Pure functions.
enum Wildmatch {
    private enum Outcome { case match, noMatch, abortAll, abortToStarStar }

    static func matches(_ pattern: [Unicode.Scalar], _ text: [Unicode.Scalar]) -> Bool {
        match(pattern, 0, text, 0) == .match
    }

    private static func match(_ p: [Unicode.Scalar], _ pStart: Int, _ t: [Unicode.Scalar], _ tStart: Int) -> Outcome {
        var pi = pStart
        var ti = tStart
        while pi < p.count {
            var pc = p[pi]
            if ti >= t.count && pc != "*" { return .abortAll }
            switch pc {
            case "\\":
                // A trailing backslash matches itself, as nothing follows to escape.
                if pi + 1 < p.count { pi += 1; pc = p[pi] }
                if t[ti] != pc { return .noMatch }
            case "?":
                if t[ti] == "/" { return .noMatch }
            case "*":
                pi += 1
                var matchSlash = false
                if pi < p.count && p[pi] == "*" {
                    let starsStart = pi - 1
                    while pi < p.count && p[pi] == "*" { pi += 1 }
                    let atSegmentStart = starsStart == 0 || p[starsStart - 1] == "/"
                    let atSegmentEnd = pi == p.count || p[pi] == "/"
                    if atSegmentStart && atSegmentEnd {
                        // "**/" may match no directory at all.
                        if pi < p.count && p[pi] == "/" && match(p, pi + 1, t, ti) == .match { return .match }
                        matchSlash = true
                    }
                }
                if pi == p.count {
                    // A trailing star matches the rest unless that crosses a "/".
                    if !matchSlash && t[ti...].contains("/") { return .abortToStarStar }
                    return .match
                }
                while ti < t.count {
                    let outcome = match(p, pi, t, ti)
                    if outcome != .noMatch {
                        if !matchSlash || outcome != .abortToStarStar { return outcome }
                    } else if !matchSlash && t[ti] == "/" {
                        return .abortToStarStar
                    }
                    ti += 1
                }
                return .abortAll
            case "[":
                guard let (matched, next) = matchClass(p, pi, t[ti]) else { return .abortAll }
                if !matched || t[ti] == "/" { return .noMatch }
                pi = next
                ti += 1
                continue
            default:
                if t[ti] != pc { return .noMatch }
            }
            pi += 1
            ti += 1
        }
        return ti == t.count ? .match : .noMatch
    }

    /// Matches one character against the class starting at `p[start] == "["`;
    /// returns whether it matched and the index after the closing `]`, or nil
    /// for an unterminated class (which, as in git, matches nothing).
    private static func matchClass(_ p: [Unicode.Scalar], _ start: Int, _ c: Unicode.Scalar) -> (Bool, Int)? {
        var pi = start + 1
        guard pi < p.count else { return nil }
        let negated = p[pi] == "!" || p[pi] == "^"
        if negated { pi += 1 }
        var matched = false
        var previous: Unicode.Scalar? = nil
        var first = true
        while true {
            guard pi < p.count else { return nil }
            var pc = p[pi]
            if pc == "]" && !first { break }
            first = false
            if pc == "\\" {
                pi += 1
                guard pi < p.count else { return nil }
                pc = p[pi]
                if c == pc { matched = true }
                previous = pc
            } else if pc == "-", let low = previous, pi + 1 < p.count, p[pi + 1] != "]" {
                pi += 1
                var high = p[pi]
                if high == "\\" {
                    pi += 1
                    guard pi < p.count else { return nil }
                    high = p[pi]
                }
                if c.value >= low.value && c.value <= high.value { matched = true }
                previous = nil
            } else if pc == "[", pi + 1 < p.count, p[pi + 1] == ":",
                      let close = findClassNameEnd(p, pi + 2) {
                let name = String(String.UnicodeScalarView(p[(pi + 2)..<close]))
                guard let test = posixClass(name) else { return nil }
                if test(c) { matched = true }
                pi = close + 1 // at the "]" of ":]"
                previous = nil
            } else {
                if c == pc { matched = true }
                previous = pc
            }
            pi += 1
        }
        return (matched != negated, pi + 1)
    }

    private static func findClassNameEnd(_ p: [Unicode.Scalar], _ from: Int) -> Int? {
        var i = from
        while i + 1 < p.count {
            if p[i] == ":" && p[i + 1] == "]" { return i }
            if p[i] == "]" { return nil }
            i += 1
        }
        return nil
    }

    private static func posixClass(_ name: String) -> ((Unicode.Scalar) -> Bool)? {
        func ascii(_ c: Unicode.Scalar) -> UInt8? { c.isASCII ? UInt8(c.value) : nil }
        switch name {
        case "alnum": return { c in ascii(c).map { isAlpha($0) || isDigit($0) } ?? false }
        case "alpha": return { c in ascii(c).map(isAlpha) ?? false }
        case "blank": return { c in c == " " || c == "\t" }
        case "cntrl": return { c in ascii(c).map { $0 < 0x20 || $0 == 0x7f } ?? false }
        case "digit": return { c in ascii(c).map(isDigit) ?? false }
        case "graph": return { c in ascii(c).map { $0 > 0x20 && $0 < 0x7f } ?? false }
        case "lower": return { c in ascii(c).map { $0 >= 0x61 && $0 <= 0x7a } ?? false }
        case "print": return { c in ascii(c).map { $0 >= 0x20 && $0 < 0x7f } ?? false }
        case "punct": return { c in ascii(c).map { $0 > 0x20 && $0 < 0x7f && !isAlpha($0) && !isDigit($0) } ?? false }
        case "space": return { c in ascii(c).map { $0 == 0x20 || ($0 >= 0x09 && $0 <= 0x0d) } ?? false }
        case "upper": return { c in ascii(c).map { $0 >= 0x41 && $0 <= 0x5a } ?? false }
        case "xdigit": return { c in ascii(c).map { isDigit($0) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x66) } ?? false }
        default: return nil
        }
    }

    private static func isAlpha(_ b: UInt8) -> Bool { (b | 0x20) >= 0x61 && (b | 0x20) <= 0x7a }
    private static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
}
