import Foundation
import XCTest
@testable import NsyncServer

/// The real `nsyncd` binary refuses to start on each misconfiguration an
/// operator can make: it exits non-zero, prints exactly one line on stderr
/// that names the problem (the path, port, flag or file) and how to fix it,
/// prints nothing on stdout, and leaves no process behind.
final class DaemonStartupErrorTests: XCTestCase {
    private var scratch: DaemonScratch!
    private var root: String!
    /// Our cluster port, our file port, and the two ports of the peer named in --cluster.
    private var ports: [Int]!
    private var certificates: TestCertificates { TestCertificates.shared }

    override func setUpWithError() throws {
        scratch = try DaemonScratch(name)
        root = try scratch.makeDirectory("data")
        ports = try DaemonPorts.take(4)
    }

    override func tearDown() {
        scratch?.remove()
    }

    private var peerEntry: String { "node2@127.0.0.1:\(ports[2]):\(ports[3])" }

    /// A valid command line for node1, with the given parts replaced.
    private func arguments(root: String? = nil, name: String = "node1", cluster: String? = nil,
                           clusterPort: Int? = nil, filePort: Int? = nil,
                           ca: String? = nil, cert: String? = nil, key: String? = nil) -> [String] {
        [root ?? self.root, "--name", name, "--host", "127.0.0.1",
         "--cluster-port", "\(clusterPort ?? ports[0])", "--file-server-port", "\(filePort ?? ports[1])",
         "--cluster", cluster ?? peerEntry,
         "--ca", ca ?? certificates.caPath,
         "--cert", cert ?? certificates.certificatePath("node1"),
         "--key", key ?? certificates.keyPath("node1")]
    }

    // MARK: PATH

    func testMissingPathIsRefusedWithTheMkdirThatCreatesIt() throws {
        let missing = scratch.path + "/no-such-dir"
        try assertRefusedToStart(in: scratch, arguments(root: missing), mentions: [missing, "does not exist", "mkdir -p \(missing)"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: missing), "a refused start must not create PATH")
    }

    func testPathThatIsAFileIsRefused() throws {
        let file = scratch.path + "/a-file"
        FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        try assertRefusedToStart(in: scratch, arguments(root: file), mentions: [file, "not a directory", "name the directory"])
    }

    func testPathNotWritableByAnUnprivilegedUserIsRefused() throws {
        // Tests run as root, for whom permission bits do not stop writes: run
        // the daemon as nobody on a root-owned 0755 directory instead.
        guard getuid() == 0 else {
            try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: root)
            defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: root) }
            try assertRefusedToStart(in: scratch, arguments(), mentions: [root, "not writable", "permissions"])
            return
        }
        try DaemonWrapper.skipUnlessAvailable(DaemonWrapper.nobody, "running as nobody")
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: scratch.path)
        try assertRefusedToStart(in: scratch, arguments(), wrapper: DaemonWrapper.nobody, mentions: [root, "not writable", "permissions"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/.nsync"))
    }

    func testPathOnAReadOnlyMountIsRefusedEvenForRoot() throws {
        let wrapper = DaemonWrapper.readOnly(root)
        try DaemonWrapper.skipUnlessAvailable(wrapper, "a private read-only bind mount")
        try assertRefusedToStart(in: scratch, arguments(), wrapper: wrapper, mentions: [root, "not writable"])
    }

    func testPeerTimeoutOutOfRangeIsRefused() throws {
        for value in ["1", "0", "-5", "4000", "nan"] {
            try assertRefusedToStart(in: scratch, arguments() + ["--peer-timeout=\(value)"],
                                     mentions: ["--peer-timeout", "out of range", "2 to 3600 seconds"])
        }
    }

    func testRescanIntervalOutOfRangeIsRefused() throws {
        for value in ["0.5", "-1", "700000", "nan", "inf"] {
            try assertRefusedToStart(in: scratch, arguments() + ["--rescan-interval=\(value)"],
                                     mentions: ["--rescan-interval", "out of range", "0 (never) or 1 to 604800 seconds"])
        }
    }

    // MARK: ports

    func testClusterPortInUseIsRefusedNamingThePort() throws {
        let holder = try DaemonPortHolder(port: ports[0])
        defer { holder.release() }
        try assertRefusedToStart(in: scratch, arguments(), mentions: ["port \(ports[0])", "already in use", "choose another port"])
    }

    func testFileServerPortInUseIsRefusedNamingThePort() throws {
        let holder = try DaemonPortHolder(port: ports[1])
        defer { holder.release() }
        try assertRefusedToStart(in: scratch, arguments(), mentions: ["port \(ports[1])", "already in use", "choose another port"])
    }

    func testEqualClusterAndFileServerPortsAreRefused() throws {
        try assertRefusedToStart(in: scratch, arguments(clusterPort: ports[0], filePort: ports[0]),
                          mentions: ["\(ports[0])", "--file-server-port and --cluster-port must differ"])
    }

    // MARK: --cluster and --name

    func testMalformedClusterEntriesAreRefusedQuotingTheEntry() throws {
        let entries = [
            "127.0.0.1:\(ports[2])",                 // a port missing
            "127.0.0.1:\(ports[2]):\(ports[3]):9",    // one too many
            "127.0.0.1:abc:\(ports[3])",             // not a number
            "127.0.0.1:0:\(ports[3])",               // out of range
            "127.0.0.1:\(ports[2]):70000",
            ":\(ports[2]):\(ports[3])",              // no host
            "[::1:\(ports[2]):\(ports[3])",          // unclosed IPv6 bracket
            "no/de@127.0.0.1:\(ports[2]):\(ports[3])", // invalid node name
        ]
        for entry in entries {
            try assertRefusedToStart(in: scratch, arguments(cluster: "\(peerEntry),\(entry)"), mentions: ["'\(entry)'", "malformed", "example: --cluster"])
        }
    }

    func testEmptyClusterIsRefused() throws {
        try assertRefusedToStart(in: scratch, arguments(cluster: ","), mentions: ["--cluster", "at least one other node"])
    }

    func testOwnNameInClusterIsRefused() throws {
        let own = "node1@127.0.0.1:\(ports[2]):\(ports[3])"
        try assertRefusedToStart(in: scratch, arguments(cluster: own), mentions: ["'\(own)'", "names this node itself", "only the other nodes"])
    }

    func testClusterEntryPointingAtOurOwnPortsIsRefused() throws {
        for entry in ["localhost:\(ports[0]):\(ports[3])", "127.0.0.1:\(ports[2]):\(ports[1])"] {
            try assertRefusedToStart(in: scratch, arguments(cluster: "\(peerEntry),\(entry)"), mentions: ["'\(entry)'", "names this node itself"])
        }
    }

    func testDuplicateClusterEntryIsRefused() throws {
        try assertRefusedToStart(in: scratch, arguments(cluster: "\(peerEntry),\(peerEntry)"), mentions: [peerEntry, "twice", "once"])
    }

    func testInvalidNodeNameIsRefused() throws {
        try assertRefusedToStart(in: scratch, arguments(name: "node 1"), mentions: ["--name 'node 1'", "letters, digits"])
    }

    func testNameNotInTheCertificateIsRefused() throws {
        // node2's certificate with --name node1: every peer would refuse its
        // Hello; it must not start and fail silently on every connection.
        try assertRefusedToStart(in: scratch, arguments(cert: certificates.certificatePath("node2"), key: certificates.keyPath("node2")),
                          mentions: ["--name 'node1'", certificates.certificatePath("node2"), "node2"])
    }

    // MARK: certificates

    func testMissingCertificateKeyOrCAIsRefusedNamingTheFileAndFlag() throws {
        let missing = scratch.path + "/missing.pem"
        try assertRefusedToStart(in: scratch, arguments(cert: missing), mentions: [missing, "--cert", "no such file"])
        try assertRefusedToStart(in: scratch, arguments(key: missing), mentions: [missing, "--key", "no such file"])
        try assertRefusedToStart(in: scratch, arguments(ca: missing), mentions: [missing, "--ca", "no such file"])
    }

    func testUnreadableCertificateKeyOrCAIsRefused() throws {
        // Root reads any file: run as nobody, on a PATH nobody owns, with
        // copies of the files that only root may read.
        guard getuid() == 0 else { throw XCTSkip("needs root to run the daemon as another user") }
        try DaemonWrapper.skipUnlessAvailable(DaemonWrapper.nobody, "running as nobody")
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: scratch.path)
        try FileManager.default.setAttributes([.ownerAccountID: 65534], ofItemAtPath: root)
        let files = try scratch.makeDirectory("files")
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: files)
        var readable: [String: String] = [:]
        for (flag, source) in [("--ca", certificates.caPath), ("--cert", certificates.certificatePath("node1")),
                               ("--key", certificates.keyPath("node1"))] {
            let open = files + "/open-" + flag.dropFirst(2)
            try FileManager.default.copyItem(atPath: source, toPath: open)
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: open)
            readable[flag] = open
        }
        for flag in ["--ca", "--cert", "--key"] {
            let closed = files + "/closed-" + flag.dropFirst(2)
            try FileManager.default.copyItem(atPath: readable[flag]!, toPath: closed)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: closed)
            var paths = readable
            paths[flag] = closed
            try assertRefusedToStart(in: scratch, arguments(ca: paths["--ca"], cert: paths["--cert"], key: paths["--key"]),
                              wrapper: DaemonWrapper.nobody, mentions: [closed, flag, "permission denied", "may read"])
        }
    }

    func testCertificateKeyOrCAThatIsNotPEMIsRefused() throws {
        let garbage = scratch.path + "/garbage.pem"
        FileManager.default.createFile(atPath: garbage, contents: Data("not a certificate\n".utf8))
        try assertRefusedToStart(in: scratch, arguments(cert: garbage), mentions: [garbage, "--cert", "PEM"])
        try assertRefusedToStart(in: scratch, arguments(key: garbage), mentions: [garbage, "--key", "PEM"])
        try assertRefusedToStart(in: scratch, arguments(ca: garbage), mentions: [garbage, "--ca", "PEM"])
    }

    func testKeyThatDoesNotMatchTheCertificateIsRefused() throws {
        let key = certificates.keyPath("node2")
        try assertRefusedToStart(in: scratch, arguments(key: key),
                          mentions: [key, certificates.certificatePath("node1"), "does not belong", "made together"])
    }

    func testCertificateNotSignedByTheCAIsRefused() throws {
        // Our certificate under a foreign CA, and a foreign certificate under ours.
        try assertRefusedToStart(in: scratch, arguments(ca: certificates.foreignCAPath),
                          mentions: [certificates.certificatePath("node1"), certificates.foreignCAPath, "not valid", "gen-certs.sh"])
        try assertRefusedToStart(in: scratch, arguments(cert: certificates.foreignCertificatePath, key: certificates.foreignKeyPath),
                          mentions: [certificates.foreignCertificatePath, "not valid under the cluster CA", "gen-certs.sh"])
    }

    func testExpiredCertificateIsRefused() throws {
        try assertRefusedToStart(in: scratch, arguments(name: "expired", cert: certificates.expiredCertificatePath, key: certificates.expiredKeyPath),
                          mentions: [certificates.expiredCertificatePath, "expired", "gen-certs.sh"])
    }

    // MARK: a running daemon

    func testSecondDaemonOnTheSamePathIsRefusedByTheLock() throws {
        let first = try scratch.start(arguments(), log: "first.log")
        defer { first.stop() }
        DaemonWait.until("the first daemon's control socket", timeout: 10, context: { first.log }) {
            DaemonProbe.status(root) != nil
        }
        // Same PATH, same ports: the lock is what must be reported, not the ports.
        try assertRefusedToStart(in: scratch, arguments(), mentions: ["already running", root, "/.nsync/lock", "stop it first"])
        let other = try DaemonPorts.take(2)
        try assertRefusedToStart(in: scratch, arguments(clusterPort: other[0], filePort: other[1]), mentions: ["already running", root])
        XCTAssertTrue(first.isRunning, "the refused second start must not disturb the first daemon")
        XCTAssertNotNil(DaemonProbe.status(root), "the first daemon still answers on its control socket")
    }
}
