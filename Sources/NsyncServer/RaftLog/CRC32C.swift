/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum on
/// every log record, metadata file and snapshot. Pure; any thread.
///
/// Castagnoli rather than zlib's CRC-32 because it detects more error
/// patterns at record sizes like ours and is what ext4, iSCSI and LevelDB
/// use. Table-driven slicing-by-8 (eight bytes per step through eight
/// 256-entry tables), in safe Swift: `Span` with unchecked subscripts keeps
/// it free of bounds checks without any unsafe pointer.
public enum CRC32C {
    /// CRC-32C of `bytes`.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        update(0, bytes)
    }

    /// CRC-32C of `bytes[range]`.
    public static func checksum(_ bytes: [UInt8], in range: Range<Int>) -> UInt32 {
        update(0, bytes, in: range)
    }

    /// Continues `crc` (a finished CRC of earlier bytes) over `bytes`, so a
    /// checksum can be built from pieces: update(checksum(a), b) == checksum(a + b).
    public static func update(_ crc: UInt32, _ bytes: [UInt8]) -> UInt32 {
        update(crc, bytes, in: bytes.startIndex..<bytes.endIndex)
    }

    /// Continues `crc` over `bytes[range]`.
    public static func update(_ crc: UInt32, _ bytes: [UInt8], in range: Range<Int>) -> UInt32 {
        precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count, "CRC range out of bounds")
        return update(crc, bytes.span, from: range.lowerBound, to: range.upperBound)
    }

    /// Continues `crc` over a slice.
    public static func update(_ crc: UInt32, _ bytes: ArraySlice<UInt8>) -> UInt32 {
        // An ArraySlice's span is indexed from 0, whatever its startIndex.
        let span = bytes.span
        return update(crc, span, from: 0, to: span.count)
    }

    private static func update(_ crc: UInt32, _ bytes: Span<UInt8>, from start: Int, to end: Int) -> UInt32 {
        let t = table.span
        var c = ~crc
        var i = start
        while end - i >= 8 {
            let lo = c ^ (UInt32(bytes[unchecked: i])
                | UInt32(bytes[unchecked: i + 1]) << 8
                | UInt32(bytes[unchecked: i + 2]) << 16
                | UInt32(bytes[unchecked: i + 3]) << 24)
            c = t[unchecked: 7 &* 256 &+ Int(lo & 0xFF)]
                ^ t[unchecked: 6 &* 256 &+ Int((lo >> 8) & 0xFF)]
                ^ t[unchecked: 5 &* 256 &+ Int((lo >> 16) & 0xFF)]
                ^ t[unchecked: 4 &* 256 &+ Int(lo >> 24)]
                ^ t[unchecked: 3 &* 256 &+ Int(bytes[unchecked: i + 4])]
                ^ t[unchecked: 2 &* 256 &+ Int(bytes[unchecked: i + 5])]
                ^ t[unchecked: 1 &* 256 &+ Int(bytes[unchecked: i + 6])]
                ^ t[unchecked: Int(bytes[unchecked: i + 7])]
            i &+= 8
        }
        while i < end {
            c = t[unchecked: Int((c ^ UInt32(bytes[unchecked: i])) & 0xFF)] ^ (c >> 8)
            i &+= 1
        }
        return ~c
    }

    /// Eight tables of 256 entries, flattened: entry k of table n is at n*256+k.
    /// Table 0 is the classic byte-at-a-time table; table n advances a byte's
    /// contribution by n further zero bytes.
    private static let table: [UInt32] = {
        let polynomial: UInt32 = 0x82F6_3B78
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for k in 0..<256 {
            var c = UInt32(k)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ polynomial : c >> 1 }
            t[k] = c
        }
        for n in 1..<8 {
            for k in 0..<256 {
                let previous = t[(n - 1) * 256 + k]
                t[n * 256 + k] = (previous >> 8) ^ t[Int(previous & 0xFF)]
            }
        }
        return t
    }()
}
