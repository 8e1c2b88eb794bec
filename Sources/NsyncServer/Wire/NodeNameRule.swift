/// The syntax of a node name (`--name`, the Hello, Raft membership, index
/// holders): 1...64 bytes of `[A-Za-z0-9._-]`. Short and plain because it is
/// matched against certificate names, shown in logs and embedded in conflict
/// file names. Pure; usable from any thread.
public enum NodeNameRule {
    public static let maxLength = 64

    /// Why `name` is not a valid node name, or nil when it is.
    public static func violation(in name: String) -> String? {
        let utf8 = name.utf8
        if utf8.isEmpty { return "node name is empty" }
        if utf8.count > maxLength {
            return "node name is \(utf8.count) bytes long; the limit is \(maxLength)"
        }
        for byte in utf8 where !isAllowed(byte) {
            return "node name \(DiagnosticText.quoted(name)) contains \(describe(byte)); only letters, digits, '.', '_' and '-' are allowed"
        }
        return nil
    }

    /// True when `name` follows the rule.
    public static func isValid(_ name: String) -> Bool { violation(in: name) == nil }

    static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }

    private static func describe(_ byte: UInt8) -> String {
        if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        return "byte 0x" + String(byte, radix: 16)
    }
}
