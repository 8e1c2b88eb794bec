import COpenSSL

/// The names in a verified peer certificate, for upper layers to compare with
/// the node name the peer claims in its Hello. A value; any thread.
public struct TLSPeerIdentity: Equatable, Sendable, CustomStringConvertible {
    /// The subject's CN (gen-certs.sh puts the node name there).
    public var commonName: String?
    /// DNS names from the subjectAltName extension.
    public var dnsNames: [String]

    public init(commonName: String?, dnsNames: [String]) {
        self.commonName = commonName
        self.dnsNames = dnsNames
    }

    /// True when `nodeName` is the certificate's CN or one of its SAN DNS
    /// names. gen-certs.sh puts "localhost" in every certificate's SAN, so a
    /// SAN "localhost" proves nothing: a node called that must have it as CN.
    public func matches(_ nodeName: String) -> Bool {
        commonName == nodeName || (nodeName != "localhost" && dnsNames.contains(nodeName))
    }

    public var description: String {
        let cn = commonName ?? "<no CN>"
        return dnsNames.isEmpty ? cn : "\(cn) (SAN \(dnsNames.joined(separator: ", ")))"
    }

    /// Reads CN and SAN DNS names from an `X509*` the handshake already verified.
    init(certificate: OpaquePointer) {
        commonName = Self.commonName(of: certificate)
        dnsNames = Self.dnsNames(of: certificate)
    }

    private static func commonName(of certificate: OpaquePointer) -> String? {
        guard let subject = X509_get_subject_name(certificate) else { return nil }
        let index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1)
        guard index >= 0, let entry = X509_NAME_get_entry(subject, index),
              let data = X509_NAME_ENTRY_get_data(entry) else { return nil }
        return string(from: data)
    }

    private static func dnsNames(of certificate: OpaquePointer) -> [String] {
        guard let raw = X509_get_ext_d2i(certificate, NID_subject_alt_name, nil, nil) else { return [] }
        let names = OpaquePointer(raw)
        defer { GENERAL_NAMES_free(names) }
        var result: [String] = []
        for i in 0..<nsync_GENERAL_NAMES_count(names) {
            guard let name = nsync_GENERAL_NAMES_at(names, i), name.pointee.type == GEN_DNS,
                  let ia5 = name.pointee.d.dNSName, let text = string(from: ia5) else { continue }
            result.append(text)
        }
        return result
    }

    /// ASN.1 strings are length-delimited and may hold a NUL: refuse those
    /// rather than let "node1\0.evil" compare equal to "node1".
    private static func string(from asn1: UnsafePointer<ASN1_STRING>) -> String? {
        guard let bytes = ASN1_STRING_get0_data(asn1) else { return nil }
        let count = Int(ASN1_STRING_length(asn1))
        let buffer = UnsafeBufferPointer(start: bytes, count: count)
        if buffer.contains(0) { return nil }
        return String(decoding: buffer, as: UTF8.self)
    }
}
