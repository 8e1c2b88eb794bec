import Foundation

/// A TCP forwarder on 127.0.0.1 standing between every pair of nodes of a
/// `TestCluster`, so a test can cut a node off the network while it runs
/// and heal it again. For each directed pair (node i dials node j) and each
/// of j's two ports it listens on a port of its own and forwards bytes both
/// ways to j's real port: ciphertext as is, TLS runs end to end between the
/// daemons. A cut freezes every link touching the node: nothing is read,
/// written or closed, so bytes wait in the kernel as behind a real partition
/// (silence, no resets); a connection made meanwhile is accepted and held,
/// not connected onwards, until `heal()`. An end a daemon closes is closed
/// on the other side too, as a forwarder would. Its own thread moves the
/// bytes (non-blocking sockets and poll(2)); `ports`, `setTargets`, `cut`,
/// `heal`, `report` and `stop` are for the test's thread.
final class PartitionProxy {
    enum Port: String, CaseIterable { case cluster, file }

    /// Node `from` dialing node `to` on `to`'s `port`.
    struct Route: Hashable, Comparable, CustomStringConvertible {
        let from: Int
        let to: Int
        let port: Port

        static func < (a: Route, b: Route) -> Bool {
            (a.from, a.to, a.port == .cluster ? 0 : 1) < (b.from, b.to, b.port == .cluster ? 0 : 1)
        }

        var description: String { "node\(from + 1) -> node\(to + 1) \(port.rawValue)" }
    }

    let nodes: Int
    private let listenPorts: [Route: Int]
    private let control: PartitionControl
    private let wakeWriter: Int32
    private var isStopped = false

    /// Listens on a free loopback port for every route between `nodes`
    /// nodes and starts the forwarding thread, which ends by itself after
    /// `lifetime` seconds should `stop()` never come.
    init(nodes: Int, lifetime: TimeInterval = 600) throws {
        self.nodes = nodes
        var listeners: [(Route, Int32)] = []
        var wake: [Int32] = [-1, -1]
        do {
            for from in 0..<nodes {
                for to in 0..<nodes where to != from {
                    for port in Port.allCases { listeners.append((Route(from: from, to: to, port: port), try Self.listen())) }
                }
            }
            guard pipe(&wake) == 0 else { throw Self.error("pipe") }
            for fd in wake { Self.makeNonBlocking(fd) }
            var ports: [Route: Int] = [:]
            for (route, fd) in listeners { ports[route] = try Self.localPort(fd) }
            listenPorts = ports
        } catch {
            for (_, fd) in listeners { close(fd) }
            for fd in wake where fd >= 0 { close(fd) }
            throw error
        }
        wakeWriter = wake[1]
        control = PartitionControl()
        let forwarder = PartitionForwarder(listeners: listeners, wakeReader: wake[0], control: control,
                                           deadline: Date().addingTimeInterval(lifetime))
        let thread = Thread { forwarder.run() }
        thread.name = "partition-proxy"
        thread.start()
    }

    deinit { stop() }

    /// The ports node `node` is to dial for peer `peer` (its `--cluster` entry).
    func ports(from node: Int, to peer: Int) -> (cluster: Int, file: Int) {
        (listenPorts[Route(from: node, to: peer, port: .cluster)]!, listenPorts[Route(from: node, to: peer, port: .file)]!)
    }

    /// Where each node really listens (index = node). Connections accepted
    /// before this is known are held, as if cut.
    func setTargets(_ targets: [(cluster: Int, file: Int)]) throws {
        precondition(targets.count == nodes, "one target per node")
        try change { $0.targets = targets }
    }

    /// Freezes every link touching `node`; returns once the forwarding thread
    /// moves no more bytes on them.
    func cut(_ node: Int) throws {
        try change { $0.cut.insert(node) }
    }

    /// Freezes only these routes (one port of one direction each), as a
    /// firewall dropping one kind of traffic would.
    func cut(_ routes: [Route]) throws {
        try change { $0.cutRoutes.formUnion(routes) }
    }

    /// Lets these routes move again (unless their node is cut as a whole).
    func heal(_ routes: [Route]) throws {
        try change { $0.cutRoutes.subtract(routes) }
    }

    /// Lets every link move again; held connections then connect onwards.
    func heal() throws {
        try change {
            $0.cut.removeAll()
            $0.cutRoutes.removeAll()
        }
    }

    /// Connections and bytes of one route so far (as of the thread's last round).
    func counters(_ route: Route) -> PartitionCounters {
        control.withLock { $0.counters[route] } ?? PartitionCounters()
    }

    /// Routes, connections and bytes moved so far, for failure messages.
    func report() -> String {
        let counters = control.withLock { $0.counters }
        let cut = control.withLock { $0.cut }
        let routes = control.withLock { $0.cutRoutes }
        var lines = ["partition proxy: cut \(cut.isEmpty ? "nothing" : cut.sorted().map { "node\($0 + 1)" }.joined(separator: ", "))"
                     + (routes.isEmpty ? "" : "; routes \(routes.sorted().map(\.description).joined(separator: ", "))")]
        for route in listenPorts.keys.sorted() {
            let c = counters[route] ?? PartitionCounters()
            lines.append("  \(route) (port \(listenPorts[route]!)): \(c.accepted) accepted, \(c.open) open, \(c.held) held, "
                         + "\(c.forward) B forward, \(c.back) B back")
        }
        return lines.joined(separator: "\n")
    }

    /// Stops the thread, which closes every socket it holds, and waits for it
    /// (at most 5 s). Idempotent.
    func stop() {
        guard !isStopped else { return }
        isStopped = true
        control.withLock { $0.stopping = true }
        wake()
        if control.waitUntil(timeout: 5, { $0.finished }) {
            close(wakeWriter)
        } else {
            // Leave the pipe open: the thread may still read its other end.
            print("partition proxy: its thread did not stop within 5 s")
        }
    }

    private func change(_ body: (inout PartitionShared) -> Void) throws {
        let generation = control.withLock { shared -> Int in
            body(&shared)
            shared.requested += 1
            return shared.requested
        }
        wake()
        guard control.waitUntil(timeout: 5, { $0.applied >= generation || $0.finished }),
              !control.withLock({ $0.finished }) else {
            throw ClusterError("the partition proxy's thread did not take a change within 5 s (or has stopped)\n" + report())
        }
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWriter, &byte, 1)
    }

    // MARK: sockets

    private static func listen() throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw error("socket") }
        var address = loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 64) == 0 else {
            let error = error("bind/listen 127.0.0.1:0")
            close(fd)
            throw error
        }
        return fd
    }

    private static func localPort(_ fd: Int32) throws -> Int {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0 else { throw error("getsockname") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// O_NONBLOCK and FD_CLOEXEC (Glibc's module has neither accept4 nor pipe2).
    static func makeNonBlocking(_ fd: Int32) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    }

    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return address
    }

    static func error(_ operation: String) -> ClusterError {
        ClusterError("partition proxy: \(operation): \(String(cString: strerror(errno)))")
    }
}

/// Connections and bytes of one route. A plain value.
struct PartitionCounters {
    var accepted = 0
    var open = 0
    /// Accepted but not connected onwards (cut, or targets not known yet).
    var held = 0
    /// Bytes from the dialing node to the dialed one, and back.
    var forward = 0
    var back = 0
}

/// What the test's thread and the forwarding thread share. Only inside
/// `PartitionControl`'s lock.
struct PartitionShared {
    var cut: Set<Int> = []
    var cutRoutes: Set<PartitionProxy.Route> = []
    var targets: [(cluster: Int, file: Int)]?
    var stopping = false
    var finished = false
    /// Changes asked for, and the last one the forwarding thread took.
    var requested = 0
    var applied = 0
    var counters: [PartitionProxy.Route: PartitionCounters] = [:]
}

/// `PartitionShared` behind a condition variable. Any thread.
final class PartitionControl {
    private let condition = NSCondition()
    private var shared = PartitionShared()

    func withLock<T>(_ body: (inout PartitionShared) -> T) -> T {
        condition.lock()
        defer {
            condition.broadcast()
            condition.unlock()
        }
        return body(&shared)
    }

    /// Waits until `predicate` holds or `timeout` passes; whether it holds.
    func waitUntil(timeout: TimeInterval, _ predicate: (PartitionShared) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while !predicate(shared) {
            if !condition.wait(until: deadline) { return predicate(shared) }
        }
        return true
    }
}

/// One accepted connection and, once connected, its onward one. Forwarding thread only.
private final class PartitionLink {
    /// Bytes read from one side and not yet written to the other.
    struct Direction {
        var bytes: [UInt8] = []
        var written = 0
        /// The source's EOF was read; passed on (shutdown) once the bytes are out.
        var ended = false
        var passedOn = false
        var isEmpty: Bool { written == bytes.count }
    }

    let route: PartitionProxy.Route
    let client: Int32
    var upstream: Int32 = -1
    var connected = false
    var forward = Direction()
    var back = Direction()
    var isClosed = false

    init(route: PartitionProxy.Route, client: Int32) {
        self.route = route
        self.client = client
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(client)
        if upstream >= 0 { Glibc.close(upstream) }
    }
}

/// The forwarding loop: accepts, connects onwards, moves bytes, honours
/// cuts. Its own thread; shares only `PartitionControl` with the test.
private final class PartitionForwarder {
    private let listeners: [(PartitionProxy.Route, Int32)]
    private let wakeReader: Int32
    private let control: PartitionControl
    private let deadline: Date
    private var links: [PartitionLink] = []
    private var counters: [PartitionProxy.Route: PartitionCounters] = [:]
    private static let chunk = 64 * 1024

    init(listeners: [(PartitionProxy.Route, Int32)], wakeReader: Int32, control: PartitionControl, deadline: Date) {
        self.listeners = listeners
        self.wakeReader = wakeReader
        self.control = control
        self.deadline = deadline
    }

    func run() {
        defer {
            for link in links { link.close() }
            for (_, fd) in listeners { close(fd) }
            close(wakeReader)
            control.withLock { $0.finished = true }
        }
        // Bounded by `stop()` or, failing that, by the deadline.
        while Date() < deadline {
            let (cut, cutRoutes, targets, stopping) = control.withLock { shared in
                shared.applied = shared.requested
                return (shared.cut, shared.cutRoutes, shared.targets, shared.stopping)
            }
            if stopping { return }
            let frozen = { (link: PartitionLink) in
                cut.contains(link.route.from) || cut.contains(link.route.to) || cutRoutes.contains(link.route)
            }
            for link in links where link.upstream < 0 && !frozen(link) {
                if let targets { connectOnwards(link, targets) }
            }
            links.removeAll { $0.isClosed }

            // [wake] + listeners + per moving link: client, upstream.
            var fds = [pollfd(fd: wakeReader, events: Int16(POLLIN), revents: 0)]
            fds += listeners.map { pollfd(fd: $0.1, events: Int16(POLLIN), revents: 0) }
            var polled: [(link: PartitionLink, client: Int?, upstream: Int?)] = []
            for link in links where link.upstream >= 0 && !frozen(link) {
                var clientEvents: Int32 = 0
                var upstreamEvents: Int32 = 0
                if !link.connected {
                    upstreamEvents = Int32(POLLOUT)
                } else {
                    if link.forward.isEmpty && !link.forward.ended { clientEvents |= Int32(POLLIN) }
                    if !link.forward.isEmpty { upstreamEvents |= Int32(POLLOUT) }
                    if link.back.isEmpty && !link.back.ended { upstreamEvents |= Int32(POLLIN) }
                    if !link.back.isEmpty { clientEvents |= Int32(POLLOUT) }
                }
                var entry: (link: PartitionLink, client: Int?, upstream: Int?) = (link, nil, nil)
                if clientEvents != 0 {
                    entry.client = fds.count
                    fds.append(pollfd(fd: link.client, events: Int16(clientEvents), revents: 0))
                }
                if upstreamEvents != 0 {
                    entry.upstream = fds.count
                    fds.append(pollfd(fd: link.upstream, events: Int16(upstreamEvents), revents: 0))
                }
                polled.append(entry)
            }
            let ready = poll(&fds, nfds_t(fds.count), 100)
            if ready < 0 && errno != EINTR { return }
            guard ready > 0 else { publish(); continue }

            if fds[0].revents != 0 { drainWake() }
            for (i, (route, fd)) in listeners.enumerated() where fds[1 + i].revents != 0 { accept(route, fd) }
            for entry in polled {
                let clientEvents = entry.client.map { Int32(fds[$0].revents) } ?? 0
                let upstreamEvents = entry.upstream.map { Int32(fds[$0].revents) } ?? 0
                move(entry.link, clientEvents: clientEvents, upstreamEvents: upstreamEvents)
            }
            links.removeAll { $0.isClosed }
            publish()
        }
    }

    private func accept(_ route: PartitionProxy.Route, _ listener: Int32) {
        for _ in 0..<16 {
            let fd = Glibc.accept(listener, nil, nil)
            guard fd >= 0 else { return }
            PartitionProxy.makeNonBlocking(fd)
            setNoDelay(fd)
            links.append(PartitionLink(route: route, client: fd))
            counters[route, default: PartitionCounters()].accepted += 1
        }
    }

    private func connectOnwards(_ link: PartitionLink, _ targets: [(cluster: Int, file: Int)]) {
        let target = targets[link.route.to]
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return link.close() }
        link.upstream = fd
        setNoDelay(fd)
        var address = PartitionProxy.loopback(port: link.route.port == .cluster ? target.cluster : target.file)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc == 0 {
            link.connected = true
        } else if errno != EINPROGRESS {
            // Refused (the daemon is down): the dialer sees its connection end, as through any forwarder.
            link.close()
        }
    }

    /// One round of a link after poll: finish the connect, read what may be
    /// read, write what is waiting, pass EOFs on, close when both ways ended.
    private func move(_ link: PartitionLink, clientEvents: Int32, upstreamEvents: Int32) {
        let anything = Int32(POLLIN | POLLOUT | POLLHUP | POLLERR)
        if !link.connected {
            guard upstreamEvents & anything != 0 else { return }
            var failure: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(link.upstream, SOL_SOCKET, SO_ERROR, &failure, &length) == 0, failure == 0 else { return link.close() }
            link.connected = true
            return
        }
        let readable = Int32(POLLIN | POLLHUP | POLLERR)
        let writable = Int32(POLLOUT | POLLHUP | POLLERR)
        if clientEvents & readable != 0, !transfer(from: link.client, into: &link.forward) { return link.close() }
        if upstreamEvents & readable != 0, !transfer(from: link.upstream, into: &link.back) { return link.close() }
        if upstreamEvents & writable != 0, !flush(&link.forward, to: link.upstream, route: link.route, forward: true) {
            return link.close()
        }
        if clientEvents & writable != 0, !flush(&link.back, to: link.client, route: link.route, forward: false) {
            return link.close()
        }
        for (direction, destination) in [(\PartitionLink.forward, link.upstream), (\PartitionLink.back, link.client)] {
            if link[keyPath: direction].ended && link[keyPath: direction].isEmpty && !link[keyPath: direction].passedOn {
                shutdown(destination, Int32(SHUT_WR))
                link[keyPath: direction].passedOn = true
            }
        }
        if link.forward.passedOn && link.back.passedOn { link.close() }
    }

    /// Reads one chunk into an empty direction; false on a socket error (reset).
    private func transfer(from fd: Int32, into direction: inout PartitionLink.Direction) -> Bool {
        guard direction.isEmpty, !direction.ended else { return true }
        var buffer = [UInt8](repeating: 0, count: Self.chunk)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 {
            direction.bytes = Array(buffer[0..<n])
            direction.written = 0
        } else if n == 0 {
            direction.ended = true
        } else {
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
        }
        return true
    }

    /// Writes what a direction holds; false on a socket error.
    private func flush(_ direction: inout PartitionLink.Direction, to fd: Int32, route: PartitionProxy.Route, forward: Bool) -> Bool {
        guard !direction.isEmpty else { return true }
        let written = direction.bytes[direction.written...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if written < 0 { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR }
        direction.written += written
        if forward { counters[route, default: PartitionCounters()].forward += written }
        else { counters[route, default: PartitionCounters()].back += written }
        return true
    }

    private func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    private func drainWake() {
        var buffer = [UInt8](repeating: 0, count: 64)
        for _ in 0..<64 {
            guard buffer.withUnsafeMutableBytes({ read(wakeReader, $0.baseAddress, $0.count) }) > 0 else { return }
        }
    }

    private func publish() {
        var snapshot = counters
        for route in snapshot.keys {
            snapshot[route]!.open = 0
            snapshot[route]!.held = 0
        }
        for link in links {
            snapshot[link.route, default: PartitionCounters()].open += 1
            if !link.connected { snapshot[link.route, default: PartitionCounters()].held += 1 }
        }
        control.withLock { $0.counters = snapshot }
    }
}
