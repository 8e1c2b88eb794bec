import XCTest
@testable import NsyncServer

final class HelloTests: XCTestCase {
    let cluster = (0..<32).map { UInt8($0) }
    let otherCluster = (0..<32).map { UInt8(255 - $0) }

    func hello(name: String = "node-1", channel: Hello.Channel = .raft, version: UInt16 = Hello.currentVersion) -> Hello {
        Hello(version: version, clusterID: cluster, nodeName: name, channel: channel)
    }

    func decode(_ bytes: [UInt8]) throws -> Hello {
        var buffer = ByteBuffer(bytes: bytes)
        return try Hello.decode(&buffer)
    }

    func testRoundTripsEveryChannel() throws {
        for channel in [Hello.Channel.raft, .file, .control] {
            let sent = hello(name: "a.B_9-z", channel: channel)
            XCTAssertEqual(try decode(sent.encoded()), sent)
        }
    }

    func testLayoutStartsWithMagicAndVersion() {
        let bytes = hello(name: "n1", channel: .file).encoded()
        XCTAssertEqual(Array(bytes[0..<4]), Array("NSYN".utf8))
        XCTAssertEqual(Array(bytes[4..<6]), [0, 9])
        XCTAssertEqual(Array(bytes[6..<38]), cluster)
        XCTAssertEqual(Array(bytes[38...]), [2, UInt8(ascii: "n"), UInt8(ascii: "1"), 2])
        XCTAssertLessThanOrEqual(hello(name: String(repeating: "x", count: 64)).encoded().count, Hello.maxEncodedSize)
    }

    func testAcceptsThePeerWhoseCertificateNamesIt() throws {
        try hello().check(expectedClusterID: cluster, certificateNames: ["other", "node-1"], expectedChannel: .raft)
    }

    func testSomethingElseOnThePortIsBadMagic() {
        XCTAssertThrowsError(try decode(Array("GET / HTTP/1.1\r\n".utf8))) { error in
            guard case .badMagic = error as? HelloError else { return XCTFail("got \(error)") }
            XCTAssertTrue("\(error)".contains("not an nsyncd"))
        }
    }

    func testAnotherProtocolVersionIsReportedAsAVersionMismatchOnDecode() {
        // A future version may lay out the rest differently: only magic and version are read.
        XCTAssertThrowsError(try decode(Array("NSYN".utf8) + [0, 1, 0xFF])) { error in
            XCTAssertEqual(error as? HelloError, .versionMismatch(theirs: 1, ours: Hello.currentVersion))
            XCTAssertTrue("\(error)".contains("same nsyncd release"))
        }
    }

    func testVersionMismatchIsAlsoRefusedByCheck() {
        XCTAssertThrowsError(try hello(version: Hello.currentVersion + 1).check(expectedClusterID: cluster, certificateNames: ["node-1"], expectedChannel: .raft)) {
            XCTAssertEqual($0 as? HelloError, .versionMismatch(theirs: Hello.currentVersion + 1, ours: Hello.currentVersion))
        }
    }

    func testPeerOfAnotherClusterIsRefused() {
        XCTAssertThrowsError(try hello().check(expectedClusterID: otherCluster, certificateNames: ["node-1"], expectedChannel: .raft)) { error in
            XCTAssertEqual(error as? HelloError, .wrongCluster(theirs: cluster, ours: otherCluster))
            XCTAssertTrue("\(error)".contains("0001020304050607"), "\(error)")
            XCTAssertTrue("\(error)".contains("ca.pem"))
        }
    }

    func testNodeClaimingANameItsCertificateDoesNotCarryIsRefused() {
        XCTAssertThrowsError(try hello(name: "node-2").check(expectedClusterID: cluster, certificateNames: ["node-1"], expectedChannel: .raft)) { error in
            XCTAssertEqual(error as? HelloError, .nameNotInCertificate(claimed: "node-2", certificateNames: ["node-1"]))
            XCTAssertTrue("\(error)".contains("\"node-2\"") && "\(error)".contains("\"node-1\""), "\(error)")
        }
    }

    func testFileConnectionOnTheRaftPortIsRefused() {
        XCTAssertThrowsError(try hello(channel: .file).check(expectedClusterID: cluster, certificateNames: ["node-1"], expectedChannel: .raft)) { error in
            XCTAssertEqual(error as? HelloError, .wrongChannel(expected: .raft, received: .file))
            XCTAssertTrue("\(error)".contains("file connection on our raft port"))
        }
    }

    func testTruncatedHelloIsMalformedAtEveryLength() {
        let bytes = hello().encoded()
        for length in 0..<bytes.count {
            XCTAssertThrowsError(try decode(Array(bytes[..<length])), "length \(length)") { error in
                guard case .malformed = error as? HelloError else { return XCTFail("length \(length): got \(error)") }
            }
        }
    }

    func testInvalidNodeNamesAndChannelsAreMalformed() {
        let prefix = Array("NSYN".utf8) + [UInt8(Hello.currentVersion >> 8), UInt8(Hello.currentVersion & 0xFF)] + cluster
        let cases: [[UInt8]] = [
            prefix + [0, 1],                                            // empty name
            prefix + [65] + Array(repeating: UInt8(ascii: "a"), count: 65) + [1],  // 65 bytes
            prefix + [3, UInt8(ascii: "a"), UInt8(ascii: "/"), UInt8(ascii: "b"), 1],  // '/'
            prefix + [2, 0xC3, 0xA9, 1],                               // "é": not in the alphabet
            prefix + [2, 0xFF, 0xFE, 1],                               // not UTF-8
            prefix + [1, UInt8(ascii: "a"), 4],                         // unknown channel
            prefix + [1, UInt8(ascii: "a"), 0],
        ]
        for (number, bytes) in cases.enumerated() {
            XCTAssertThrowsError(try decode(bytes), "case \(number)") { error in
                guard case .malformed = error as? HelloError else { return XCTFail("case \(number): got \(error)") }
            }
        }
    }

    func testNodeNameRule() {
        for name in ["a", "node-1", "N.o_d-e", String(repeating: "z", count: 64)] {
            XCTAssertNil(NodeNameRule.violation(in: name), name)
        }
        for name in ["", String(repeating: "z", count: 65), "a b", "a/b", "é", "a\u{0}", "a\nb"] {
            XCTAssertNotNil(NodeNameRule.violation(in: name), name)
        }
        XCTAssertEqual(NodeNameRule.violation(in: "a\nb"), "node name \"a\\nb\" contains byte 0xa; only letters, digits, '.', '_' and '-' are allowed")
    }
}
