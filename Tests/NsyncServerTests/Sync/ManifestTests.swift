import XCTest
@testable import NsyncServer

/// `.nsync/manifest`'s codec: a round trip keeps every field; another
/// format version or damage is refused.
final class ManifestTests: XCTestCase {
    private func sample() -> PathMap<ManifestEntry> {
        var manifest = PathMap<ManifestEntry>()
        manifest["a.txt"] = ManifestEntry(version: 7, local: LocalFile(
            kind: .file, size: 10, mode: 0o640, mtime: 1_000_000_000_123_456_789, hash: [UInt8](repeating: 9, count: 32), inode: 42))
        manifest["dir"] = ManifestEntry(version: 3, local: LocalFile(kind: .directory, mode: 0o755, mtime: 5, inode: 43))
        manifest["dir/link"] = ManifestEntry(version: 8, local: LocalFile(kind: .symlink, mode: 0, mtime: 777, target: "../a.txt", inode: 44))
        manifest["gone"] = ManifestEntry(version: 9, local: nil)
        return manifest
    }

    private func entries(_ manifest: PathMap<ManifestEntry>) -> [String: ManifestEntry] {
        Dictionary(uniqueKeysWithValues: manifest.map { ($0.key, $0.value) })
    }

    /// The encoded bytes with their format version replaced (and the checksum made right again).
    private func withVersion(_ version: UInt16, _ bytes: [UInt8]) -> [UInt8] {
        var body = Array(bytes.dropLast(4))
        body[4] = UInt8(version >> 8)
        body[5] = UInt8(version & 0xFF)
        var tail = ByteBuffer(capacity: 4)
        tail.writeInteger(CRC32C.checksum(body))
        return body + tail.bytes
    }

    func testARoundTripKeepsEveryEntry() throws {
        let manifest = sample()
        XCTAssertEqual(entries(try Manifest.decode(Manifest.encode(manifest))), entries(manifest))
    }

    func testAnUnknownVersionOrADamagedManifestIsRefused() throws {
        let bytes = Manifest.encode(sample())
        XCTAssertThrowsError(try Manifest.decode(withVersion(2, bytes)))
        var damaged = bytes
        damaged[12] ^= 0x40
        XCTAssertThrowsError(try Manifest.decode(damaged))
        XCTAssertThrowsError(try Manifest.decode(Array(bytes.prefix(3))))
    }
}
