import Foundation
import XCTest
import NsyncServer

/// certs/gen-certs.sh, run for real into a temporary directory.
final class GenCertsScriptTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.path + "/nsync-gencerts-\(getpid())-\(UUID().uuidString.prefix(8))"
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as! NSNumber).intValue & 0o777
    }

    private func read(_ path: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: path))
    }

    func testOutputsVerifyAgainstTheCAAndKeysAreOwnerOnly() throws {
        let output = try TestCertificates.run(["--out", directory, "--host", "10.1.2.3", "--host", "sync.example", "alpha", "beta"])
        XCTAssertTrue(output.contains("created cluster CA"), output)
        let verify = try TestCertificates.runCommand("openssl", ["verify", "-CAfile", "\(directory)/ca.pem",
                                                                  "\(directory)/alpha.pem", "\(directory)/beta.pem"])
        XCTAssertTrue(verify.contains("alpha.pem: OK") && verify.contains("beta.pem: OK"), verify)
        for key in ["ca.key", "alpha.key", "beta.key"] {
            XCTAssertEqual(try mode("\(directory)/\(key)"), 0o600, key)
        }
        let text = try TestCertificates.runCommand("openssl", ["x509", "-in", "\(directory)/alpha.pem", "-noout", "-subject", "-ext", "subjectAltName"])
        XCTAssertTrue(text.contains("CN = alpha"), text)
        for san in ["DNS:alpha", "DNS:localhost", "IP Address:127.0.0.1", "IP Address:10.1.2.3", "DNS:sync.example"] {
            XCTAssertTrue(text.contains(san), "missing \(san) in \(text)")
        }
    }

    func testRerunForANewNodeKeepsTheCASoOldNodesTrustIt() throws {
        try TestCertificates.run(["--out", directory, "alpha"])
        let ca = try read("\(directory)/ca.pem")
        let caKey = try read("\(directory)/ca.key")
        let alpha = try read("\(directory)/alpha.pem")
        let output = try TestCertificates.run(["--out", directory, "alpha", "gamma"])
        XCTAssertTrue(output.contains("reusing cluster CA"), output)
        XCTAssertEqual(try read("\(directory)/ca.pem"), ca)
        XCTAssertEqual(try read("\(directory)/ca.key"), caKey)
        XCTAssertEqual(try read("\(directory)/alpha.pem"), alpha, "an existing node certificate is kept without --force")
        let verify = try TestCertificates.runCommand("openssl", ["verify", "-CAfile", "\(directory)/ca.pem", "\(directory)/gamma.pem"])
        XCTAssertTrue(verify.contains("gamma.pem: OK"), verify)
        // The new node and an old one complete mutual TLS with each other.
        let old = try NsyncServer.TLSContext(role: .server, caPath: "\(directory)/ca.pem",
                                             certificatePath: "\(directory)/alpha.pem", keyPath: "\(directory)/alpha.key")
        let new = try NsyncServer.TLSContext(role: .client, caPath: "\(directory)/ca.pem",
                                             certificatePath: "\(directory)/gamma.pem", keyPath: "\(directory)/gamma.key")
        XCTAssertEqual(old.clusterID, new.clusterID)
    }

    func testForceReissuesAnExistingNode() throws {
        try TestCertificates.run(["--out", directory, "alpha"])
        let before = try read("\(directory)/alpha.pem")
        try TestCertificates.run(["--out", directory, "--force", "alpha"])
        XCTAssertNotEqual(try read("\(directory)/alpha.pem"), before)
    }

    func testBadArgumentsAreRefusedWithAReason() {
        for arguments in [["--out", directory], ["--out", directory, "../evil"], ["--out", directory, "ca"], ["--out", directory, "a:b"],
                          ["--out", directory, String(repeating: "n", count: 65)],
                          ["--out", directory, "--days", "soon", "alpha"], ["--bogus", "alpha"]] {
            XCTAssertThrowsError(try TestCertificates.run(arguments), "\(arguments)") { error in
                XCTAssertTrue("\(error)".contains("gen-certs.sh"), "\(error)")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(directory)/ca.pem"), "a refused run created a CA")
    }
}
