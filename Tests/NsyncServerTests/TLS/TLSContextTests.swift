import Foundation
import XCTest
@testable import NsyncServer

final class TLSContextTests: XCTestCase {
    var certs: TestCertificates { TestCertificates.shared }

    private func assertConfigurationError(_ body: @autoclosure () throws -> TLSContext, mentions fragments: [String],
                                          file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard let error = error as? TLSError else { return XCTFail("not a TLSError: \(error)", file: file, line: line) }
            XCTAssertEqual(error.kind, .configuration, file: file, line: line)
            XCTAssertFalse(error.description.contains("\n"), "not one line: \(error)", file: file, line: line)
            for fragment in fragments {
                XCTAssertTrue(error.description.contains(fragment), "\"\(error)\" does not mention \"\(fragment)\"", file: file, line: line)
            }
        }
    }

    func testClusterIDIsSHA256OfTheCACertificateDER() throws {
        let context = try certs.serverContext()
        let fingerprint = try TestCertificates.runCommand("openssl", ["x509", "-in", certs.caPath, "-noout", "-fingerprint", "-sha256"])
        // "sha256 Fingerprint=AB:CD:..."
        let hex = fingerprint.split(separator: "=").last!.trimmingCharacters(in: .whitespacesAndNewlines)
        let expected = hex.split(separator: ":").map { UInt8($0, radix: 16)! }
        XCTAssertEqual(expected.count, 32)
        XCTAssertEqual(context.clusterID, expected)
        XCTAssertEqual(try certs.clientContext("node3").clusterID, expected, "every node of a cluster shares the id")
    }

    func testAnotherClusterHasAnotherClusterID() throws {
        let foreign = try TLSContext(role: .server, caPath: certs.foreignCAPath,
                                     certificatePath: certs.foreignCertificatePath, keyPath: certs.foreignKeyPath)
        XCTAssertNotEqual(foreign.clusterID, try certs.serverContext().clusterID)
    }

    func testMissingKeyFileNamesTheFile() {
        let missing = certs.directory + "/nope.key"
        assertConfigurationError(try TLSContext(role: .server, caPath: certs.caPath,
                                                certificatePath: certs.certificatePath("node1"), keyPath: missing),
                                 mentions: [missing, "No such file"])
    }

    func testMissingCAFileNamesTheFlag() {
        let missing = certs.directory + "/missing-ca.pem"
        assertConfigurationError(try TLSContext(role: .client, caPath: missing,
                                                certificatePath: certs.certificatePath("node1"), keyPath: certs.keyPath("node1")),
                                 mentions: [missing, "--ca"])
    }

    func testKeyOfAnotherNodeIsRefused() {
        assertConfigurationError(try TLSContext(role: .server, caPath: certs.caPath,
                                                certificatePath: certs.certificatePath("node1"), keyPath: certs.keyPath("node2")),
                                 mentions: ["does not belong", "node1.pem", "node2.key"])
    }

    func testCertificateNotSignedByTheCAIsRefused() {
        assertConfigurationError(try TLSContext(role: .server, caPath: certs.caPath,
                                                certificatePath: certs.foreignCertificatePath, keyPath: certs.foreignKeyPath),
                                 mentions: ["not valid under the cluster CA", "unable to get local issuer certificate"])
    }

    func testExpiredOwnCertificateIsRefused() {
        assertConfigurationError(try TLSContext(role: .client, caPath: certs.caPath,
                                                certificatePath: certs.expiredCertificatePath, keyPath: certs.expiredKeyPath),
                                 mentions: ["certificate has expired"])
    }

    func testCAFileWithoutACertificateIsRefused() {
        assertConfigurationError(try TLSContext(role: .server, caPath: certs.keyPath("node1"),
                                                certificatePath: certs.certificatePath("node1"), keyPath: certs.keyPath("node1")),
                                 mentions: ["no PEM certificate"])
    }
}
