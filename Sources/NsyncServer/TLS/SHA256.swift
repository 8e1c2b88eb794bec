import COpenSSL

/// An incremental SHA-256 hasher over OpenSSL's EVP interface; owns one
/// `EVP_MD_CTX`, freed in deinit. Used by one thread at a time (hashing runs
/// on thread-pool threads; a hasher is handed over whole, never shared).
///
/// A class rather than a struct because the context is a C allocation with
/// one owner: copying a struct would alias it. After `finalize()` the hasher
/// is reset and can hash the next input, which saves an allocation per file.
public final class SHA256 {
    /// Length of a digest in bytes.
    public static let digestLength = 32

    /// The digest algorithm, fetched once: OpenSSL 3 would otherwise look the
    /// provider up again on every init, which costs more than hashing a small
    /// file. An `EVP_MD` is immutable and safe to share between threads.
    private static let algorithm: OpaquePointer = {
        guard let md = EVP_MD_fetch(nil, "SHA256", nil) else {
            fatalError("OpenSSL has no SHA256 provider: the libcrypto install is broken")
        }
        return md
    }()

    private let context: OpaquePointer

    public init() {
        guard let context = EVP_MD_CTX_new() else {
            fatalError("EVP_MD_CTX_new failed: out of memory")
        }
        self.context = context
        reset()
    }

    deinit {
        EVP_MD_CTX_free(context)
    }

    /// Starts a new digest, discarding whatever was fed so far.
    public func reset() {
        // Init only fails on a broken provider or no memory; neither is
        // something a caller could recover from per file.
        guard EVP_DigestInit_ex(context, SHA256.algorithm, nil) == 1 else {
            fatalError("EVP_DigestInit_ex(SHA256) failed")
        }
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        guard EVP_DigestUpdate(context, base, bytes.count) == 1 else {
            fatalError("EVP_DigestUpdate failed")
        }
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public func update(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { update($0) }
    }

    public func update(_ text: String) {
        var text = text
        text.withUTF8 { update(UnsafeRawBufferPointer($0)) }
    }

    /// The digest of everything fed so far, without ending it: hashing
    /// goes on from here (a fetch that starts from bytes it already had
    /// names their digest, then hashes what arrives after them).
    public func digestSoFar() -> [UInt8] {
        guard let copy = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new failed: out of memory") }
        defer { EVP_MD_CTX_free(copy) }
        guard EVP_MD_CTX_copy_ex(copy, context) == 1 else { fatalError("EVP_MD_CTX_copy_ex failed") }
        var digest = [UInt8](repeating: 0, count: SHA256.digestLength)
        var length: UInt32 = 0
        let ok = digest.withUnsafeMutableBufferPointer { EVP_DigestFinal_ex(copy, $0.baseAddress, &length) }
        guard ok == 1, length == UInt32(SHA256.digestLength) else { fatalError("EVP_DigestFinal_ex failed") }
        return digest
    }

    /// Returns the 32-byte digest of everything fed since the last reset and
    /// resets the hasher for the next input.
    public func finalize() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: SHA256.digestLength)
        var length: UInt32 = 0
        let ok = digest.withUnsafeMutableBufferPointer {
            EVP_DigestFinal_ex(context, $0.baseAddress, &length)
        }
        guard ok == 1, length == UInt32(SHA256.digestLength) else {
            fatalError("EVP_DigestFinal_ex failed")
        }
        reset()
        return digest
    }

    /// The digest of one contiguous input.
    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        let hasher = SHA256()
        hasher.update(bytes)
        return hasher.finalize()
    }

    public static func hash(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        let hasher = SHA256()
        hasher.update(bytes)
        return hasher.finalize()
    }

    /// Lower-case hexadecimal, the form digests take in logs and `status`.
    public static func hex(_ digest: [UInt8]) -> String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(digest.count * 2)
        for byte in digest {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
