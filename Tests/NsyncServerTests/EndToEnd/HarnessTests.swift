import Foundation
import XCTest

/// The end-to-end harness itself: its comparisons must be able to fail, and
/// a port someone else took must not fail a test.
final class EndToEndHarnessTests: ClusterTestCase {
    func testTreesDifferingInContentModeMtimeTargetLinkMtimeOrNameFormAreNotEqual() throws {
        let base = NSTemporaryDirectory() + "/nsync-harness-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: base) }
        func make(_ name: String, _ change: (String) throws -> Void = { _ in }) throws -> ClusterTree {
            let root = base + "/" + name
            try FileManager.default.createDirectory(atPath: root + "/.nsync", withIntermediateDirectories: true)
            try Data("state, never compared".utf8).write(to: URL(fileURLWithPath: root + "/.nsync/\(name)"))
            try FileManager.default.createDirectory(atPath: root + "/dir", withIntermediateDirectories: true)
            try Data("content".utf8).write(to: URL(fileURLWithPath: root + "/dir/file"))
            var time = [timespec(tv_sec: 1_000, tv_nsec: 5), timespec(tv_sec: 1_000, tv_nsec: 5)]
            XCTAssertEqual(utimensat(AT_FDCWD, root + "/dir/file", &time, 0), 0)
            XCTAssertEqual(symlink("dir/file", root + "/link"), 0)
            XCTAssertEqual(utimensat(AT_FDCWD, root + "/link", &time, AT_SYMLINK_NOFOLLOW), 0)
            try Data().write(to: URL(fileURLWithPath: root + "/caf\u{E9}"))
            XCTAssertEqual(utimensat(AT_FDCWD, root + "/caf\u{E9}", &time, 0), 0)
            try change(root)
            return try ClusterTree.read(root: root)
        }
        let reference = try make("reference")
        XCTAssertEqual(try make("same"), reference, "identical trees (.nsync aside) compare equal")
        XCTAssertEqual(reference.count, 4)
        let changes: [(String, (String) throws -> Void)] = [
            ("content", { try Data("CONTENT".utf8).write(to: URL(fileURLWithPath: $0 + "/dir/file")) }),
            ("mode", { XCTAssertEqual(chmod($0 + "/dir/file", 0o600), 0) }),
            ("mtime", { root in
                var time = [timespec(tv_sec: 1_000, tv_nsec: 6), timespec(tv_sec: 1_000, tv_nsec: 6)]
                XCTAssertEqual(utimensat(AT_FDCWD, root + "/dir/file", &time, 0), 0)
            }),
            ("link mtime", { root in
                var time = [timespec(tv_sec: 1_000, tv_nsec: 6), timespec(tv_sec: 1_000, tv_nsec: 6)]
                XCTAssertEqual(utimensat(AT_FDCWD, root + "/link", &time, AT_SYMLINK_NOFOLLOW), 0)
            }),
            ("target", { XCTAssertEqual(unlink($0 + "/link"), 0); XCTAssertEqual(symlink("dir", $0 + "/link"), 0) }),
            ("name form", { XCTAssertEqual(rename($0 + "/caf\u{E9}", $0 + "/cafe\u{301}"), 0) }),
            ("extra empty dir", { try FileManager.default.createDirectory(atPath: $0 + "/empty", withIntermediateDirectories: false) }),
        ]
        for (what, change) in changes {
            let other = try make(what.replacingOccurrences(of: " ", with: "-"), change)
            XCTAssertNotEqual(other, reference, "a different \(what) must show")
            XCTAssertFalse(reference.differences(to: other, name: "a", otherName: "b").isEmpty, what)
        }
    }

    func testClusterStartsWithNewPortsWhenADaemonFindsItsPortTaken() throws {
        // Someone listens on the first port the harness hands out.
        let taken = try TestCluster.freePorts(1)[0]
        let squatter = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(squatter) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(taken).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(squatter, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(bound, 0)
        XCTAssertEqual(listen(squatter, 1), 0)
        let original = TestCluster.portPicker
        var calls = 0
        TestCluster.portPicker = { count in
            calls += 1
            let ports = try TestCluster.freePorts(count)
            return calls == 1 ? [taken] + ports.dropFirst() : ports
        }
        defer { TestCluster.portPicker = original }

        let cluster = try makeCluster()

        XCTAssertEqual(calls, 2, "a second set of ports was chosen")
        XCTAssertTrue(cluster.log(0).contains("port \(taken) is already in use"), cluster.logTail(0))
        XCTAssertNotEqual(cluster.members[0].clusterPort, taken)
        try cluster.write(1, "works.txt", "yes\n")
        XCTAssertEqual(try cluster.waitUntilConverged()["works.txt"]?.size, 4)
    }
}
