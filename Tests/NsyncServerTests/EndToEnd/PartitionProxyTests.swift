import Foundation
import XCTest

/// The partition proxy on its own, with plain sockets standing in for the
/// daemons: it forwards both ways, a cut holds bytes and new connections
/// without closing anything, a heal delivers them, and a close passes through.
final class PartitionProxyTests: XCTestCase {
    func testCutHoldsBytesAndNewConnectionsUntilHealThenDeliversThem() throws {
        let proxy = try PartitionProxy(nodes: 2)
        defer { proxy.stop() }
        let cluster1 = try Endpoint.listener()
        let file1 = try Endpoint.listener()
        let unused = try Endpoint.listener()
        defer { for socket in [cluster1, file1, unused] { socket.close() } }
        try proxy.setTargets([(unused.port, unused.port), (cluster1.port, file1.port)])
        let ports = proxy.ports(from: 0, to: 1)

        let client = try Endpoint.connect(ports.cluster)
        defer { client.close() }
        let server = try XCTUnwrap(cluster1.accept(timeout: 5), "the proxy connects onwards at once")
        defer { server.close() }
        try client.send("hello")
        XCTAssertEqual(server.receive(5, timeout: 5), "hello")
        try server.send("world")
        XCTAssertEqual(client.receive(5, timeout: 5), "world")

        try proxy.cut(1)
        try client.send("during the cut")
        try server.send("back during the cut")
        let late = try Endpoint.connect(ports.file)
        defer { late.close() }
        try late.send("late")
        _ = try poll("the late connection to be accepted and held") {
            let c = proxy.counters(.init(from: 0, to: 1, port: .file))
            return c.accepted == 1 && c.held == 1 ? true : nil
        }
        // A bounded look for what must not happen: nothing crosses the cut, nothing is closed.
        XCTAssertNil(server.receive(1, timeout: 0.3), "no byte crosses a cut")
        XCTAssertNil(client.receive(1, timeout: 0.3), "no byte crosses a cut, the other way either")
        XCTAssertNil(file1.accept(timeout: 0.3), "a connection made during a cut is not connected onwards")
        XCTAssertFalse(client.isClosedByPeer || server.isClosedByPeer, "a cut closes nothing")

        try proxy.heal()
        XCTAssertEqual(server.receive(14, timeout: 5), "during the cut")
        XCTAssertEqual(client.receive(19, timeout: 5), "back during the cut")
        let held = try XCTUnwrap(file1.accept(timeout: 5), "the held connection connects onwards after the heal")
        defer { held.close() }
        XCTAssertEqual(held.receive(4, timeout: 5), "late")

        server.close()
        XCTAssertTrue(client.waitForEnd(timeout: 5), "a close on one side reaches the other")
        proxy.stop()
        XCTAssertTrue(late.waitForEnd(timeout: 5), "stopping the proxy closes what it held")
        XCTAssertTrue(held.waitForEnd(timeout: 5))
    }

    private func poll<T>(_ what: String, timeout: TimeInterval = 5, _ condition: () -> T?) throws -> T {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let value = condition() { return value }
            guard Date() < deadline else { throw ClusterError("timed out after \(timeout) s waiting for \(what)") }
            usleep(10_000)
        }
    }
}

/// A blocking loopback socket with bounded reads, for `PartitionProxyTests`. The test's thread.
private final class Endpoint {
    let fd: Int32
    let port: Int
    private var closed = false

    private init(fd: Int32, port: Int) {
        self.fd = fd
        self.port = port
    }

    static func listener() throws -> Endpoint {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw PartitionProxy.error("socket") }
        var address = PartitionProxy.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 8) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else {
            let error = PartitionProxy.error("bind/listen")
            Glibc.close(fd)
            throw error
        }
        return Endpoint(fd: fd, port: Int(UInt16(bigEndian: address.sin_port)))
    }

    static func connect(_ port: Int) throws -> Endpoint {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw PartitionProxy.error("socket") }
        var address = PartitionProxy.loopback(port: port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let error = PartitionProxy.error("connect 127.0.0.1:\(port)")
            Glibc.close(fd)
            throw error
        }
        return Endpoint(fd: fd, port: port)
    }

    /// The next connection, or nil if none comes within `timeout`.
    func accept(timeout: TimeInterval) -> Endpoint? {
        guard wait(POLLIN, timeout: timeout) else { return nil }
        let client = Glibc.accept(fd, nil, nil)
        return client >= 0 ? Endpoint(fd: client, port: port) : nil
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard n == bytes.count else { throw PartitionProxy.error("send") }
    }

    /// Exactly `count` bytes as text, or nil if they do not all come within `timeout`.
    func receive(_ count: Int, timeout: TimeInterval) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        var bytes: [UInt8] = []
        while bytes.count < count {
            guard wait(POLLIN, timeout: deadline.timeIntervalSinceNow) else { return nil }
            var buffer = [UInt8](repeating: 0, count: count - bytes.count)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return nil }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Whether the peer closed (EOF or reset) within `timeout`, reading and dropping any bytes before it.
    func waitForEnd(timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        for _ in 0..<1_000 {
            guard wait(POLLIN, timeout: deadline.timeIntervalSinceNow) else { return false }
            var buffer = [UInt8](repeating: 0, count: 4096)
            if buffer.withUnsafeMutableBytes({ recv(fd, $0.baseAddress, $0.count, 0) }) <= 0 { return true }
        }
        return false
    }

    /// Whether the peer has closed (EOF or reset waiting), without waiting or consuming bytes.
    var isClosedByPeer: Bool {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
    }

    private func wait(_ events: Int32, timeout: TimeInterval) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(events), revents: 0)
        return poll(&entry, 1, Int32(max(0, timeout) * 1000)) > 0
    }

    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }
}
