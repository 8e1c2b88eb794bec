/// Names of conflict copies: when a node loses a concurrent edit it keeps its
/// bytes as `dir/name.sync-conflict-YYYYMMDD-HHMMSS-NODE.ext` (the name
/// Syncthing users already recognise). Pure functions; any thread.
public enum ConflictName {
    static let marker = ".sync-conflict-"
    /// Linux's NAME_MAX: the longest single path component, in bytes.
    static let maximumComponentBytes = 255

    /// The conflict-copy path for `path` (relative, `/`-separated) made at
    /// `secondsSinceEpoch` (UTC) by `node`.
    ///
    /// The extension is what follows the last dot of the last component, so
    /// the copy still opens in the same application; a dotfile with no other
    /// dot (`.bashrc`) has none. Characters a file name cannot hold (`/`, NUL)
    /// in the node name become `_`. A component that would exceed 255 bytes
    /// has its stem shortened (at a character boundary).
    public static func conflictCopyName(for path: String, secondsSinceEpoch: Int64, node: NodeName) -> String {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[...$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        var (stem, ext) = splitExtension(name)
        let nodeText = String(node.unicodeScalars.map { $0 == "/" || $0 == "\0" ? "_" : Character($0) })
        let suffix = marker + timestamp(secondsSinceEpoch) + "-" + truncated(nodeText, toBytes: 64)
        // An absurdly long extension is not worth keeping at the stem's expense.
        if ext.utf8.count > 64 { (stem, ext) = (name, "") }
        let budget = maximumComponentBytes - suffix.utf8.count - ext.utf8.count
        return directory + truncated(stem, toBytes: max(budget, 1)) + suffix + ext
    }

    /// Whether `path`'s last component has the shape `conflictCopyName`
    /// produces, so a conflict copy is not itself treated as the original of
    /// another conflict forever.
    public static func isConflictCopy(_ path: String) -> Bool {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        var searchStart = name.startIndex
        while let range = name[searchStart...].firstRange(of: marker) {
            let rest = Array(name[range.upperBound...].utf8)
            // YYYYMMDD-HHMMSS-NODE with a non-empty node.
            if rest.count > 16,
               rest[0..<8].allSatisfy(isDigit), rest[8] == UInt8(ascii: "-"),
               rest[9..<15].allSatisfy(isDigit), rest[15] == UInt8(ascii: "-") {
                return true
            }
            searchStart = range.upperBound
        }
        return false
    }

    /// Splits `name` into stem and extension (with its dot).
    static func splitExtension(_ name: String) -> (stem: String, ext: String) {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return (name, "") }
        return (String(name[..<dot]), String(name[dot...]))
    }

    /// `YYYYMMDD-HHMMSS` in UTC, from days-since-epoch arithmetic (Howard
    /// Hinnant's civil_from_days), so no calendar library or time zone is involved.
    static func timestamp(_ seconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return pad(year, 4) + pad(month, 2) + pad(day, 2) + "-"
            + pad(secondOfDay / 3600, 2) + pad(secondOfDay / 60 % 60, 2) + pad(secondOfDay % 60, 2)
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }

    /// The longest prefix of `text` of at most `limit` UTF-8 bytes that ends
    /// on a character boundary.
    static func truncated(_ text: String, toBytes limit: Int) -> String {
        if text.utf8.count <= limit { return text }
        var result = ""
        var used = 0
        for character in text {
            let size = character.utf8.count
            if used + size > limit { break }
            result.append(character)
            used += size
        }
        return result
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
}
