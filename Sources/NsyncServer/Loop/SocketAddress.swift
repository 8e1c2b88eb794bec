import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 socket address (a `sockaddr_storage`), parsed from text
/// or resolved through libuv's getaddrinfo. A value; any thread.
struct SocketAddress: CustomStringConvertible {
    private var storage = sockaddr_storage()

    /// A numeric IPv4 / IPv6 address, or "localhost" (always 127.0.0.1, so a
    /// test or a single-host cluster never depends on the resolver or on IPv6
    /// being configured). IPv6 may be written with brackets: "[::1]".
    init?(numericHost host: String, port: Int) {
        guard (0...65535).contains(port) else { return nil }
        var host = host
        if host == "localhost" { host = "127.0.0.1" }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let parsed = withUnsafeMutableBytes(of: &storage) { raw -> Bool in
            if uv_ip4_addr(host, Int32(port), raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)) == 0 { return true }
            return uv_ip6_addr(host, Int32(port), raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)) == 0
        }
        if !parsed { return nil }
    }

    /// Copies a `sockaddr_in` / `sockaddr_in6` (other families give nil).
    init?(copying address: UnsafePointer<sockaddr>) {
        let size: Int
        switch Int32(address.pointee.sa_family) {
        case AF_INET: size = MemoryLayout<sockaddr_in>.size
        case AF_INET6: size = MemoryLayout<sockaddr_in6>.size
        default: return nil
        }
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: address, count: size)) }
    }

    /// Reads an address with `get` (`uv_tcp_getsockname` / `getpeername`).
    init?(reading get: (UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<Int32>) -> Int32) {
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutableBytes(of: &storage) { get($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length) }
        guard rc == 0, [AF_INET, AF_INET6].contains(Int32(storage.ss_family)) else { return nil }
    }

    func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>) throws -> R) rethrows -> R {
        try withUnsafeBytes(of: storage) { try body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self)) }
    }

    var port: Int {
        withUnsafeBytes(of: storage) { raw in
            Int(UInt16(bigEndian: Int32(storage.ss_family) == AF_INET
                ? raw.load(as: sockaddr_in.self).sin_port
                : raw.load(as: sockaddr_in6.self).sin6_port))
        }
    }

    /// "127.0.0.1" or "::1".
    var host: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        withUnsafeBytes(of: storage) { raw in
            if Int32(storage.ss_family) == AF_INET {
                _ = uv_ip4_name(raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self), &text, text.count)
            } else {
                _ = uv_ip6_name(raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self), &text, text.count)
            }
        }
        return String(cString: text)
    }

    /// "127.0.0.1:7000" or "[::1]:7000".
    var description: String {
        Int32(storage.ss_family) == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// A numeric host at once, else a getaddrinfo lookup on the thread pool;
    /// `completion` runs on the loop thread (never inside this call).
    static func resolve(host: String, port: Int, on loop: EventLoop,
                        completion: @escaping (Result<SocketAddress, UVError>) -> Void) {
        let target = "\(host):\(port)"
        guard (0...65535).contains(port) else {
            let error = UVError(code: UV_EINVAL.rawValue, operation: "resolve", target: target)
            loop.execute { completion(.failure(error)) }
            return
        }
        if let address = SocketAddress(numericHost: host, port: port) {
            loop.execute { completion(.success(address)) }
            return
        }
        let lookup = AddressLookup(target: target, completion: completion)
        let rc = lookup.start(on: loop, host: host, port: port, synchronous: false)
        if rc < 0 {
            loop.execute { lookup.finish(status: rc, result: nil) }
        }
    }

    /// Like `resolve`, but blocking the loop thread on getaddrinfo: only for
    /// start-up (binding a listener by name).
    static func resolveNow(host: String, port: Int, on loop: EventLoop, operation: String) throws -> SocketAddress {
        let target = "\(host):\(port)"
        guard (0...65535).contains(port) else { throw UVError(code: UV_EINVAL.rawValue, operation: operation, target: target) }
        if let address = SocketAddress(numericHost: host, port: port) { return address }
        var outcome: Result<SocketAddress, UVError>?
        let lookup = AddressLookup(target: target) { outcome = $0 }
        let rc = lookup.start(on: loop, host: host, port: port, synchronous: true)
        lookup.finish(status: rc, result: rc == 0 ? lookup.request.pointee.addrinfo : nil)
        return try outcome!.mapError { UVError(code: $0.code, operation: operation, target: target) }.get()
    }
}

/// One getaddrinfo request and its completion; holds itself (through the
/// request's `data`) until libuv calls back. Loop thread.
private final class AddressLookup {
    let request = UnsafeMutablePointer<uv_getaddrinfo_t>.allocate(capacity: 1)
    let target: String
    var completion: ((Result<SocketAddress, UVError>) -> Void)?

    init(target: String, completion: @escaping (Result<SocketAddress, UVError>) -> Void) {
        self.target = target
        self.completion = completion
    }

    deinit { request.deallocate() }

    func start(on loop: EventLoop, host: String, port: Int, synchronous: Bool) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        if synchronous {
            request.pointee.data = nil
            return uv_getaddrinfo(loop.pointer, request, nil, host, String(port), &hints)
        }
        request.pointee.data = Unmanaged.passRetained(self).toOpaque()
        let rc = uv_getaddrinfo(loop.pointer, request, { request, status, result in
            let lookup = Unmanaged<AddressLookup>.fromOpaque(request!.pointee.data).takeRetainedValue()
            lookup.finish(status: status, result: result)
        }, host, String(port), &hints)
        if rc < 0 { Unmanaged<AddressLookup>.fromOpaque(request.pointee.data).release() }
        return rc
    }

    /// Picks the first IPv4 or IPv6 result and frees libuv's list.
    func finish(status: Int32, result: UnsafeMutablePointer<addrinfo>?) {
        var outcome = Result<SocketAddress, UVError>.failure(UVError(code: status, operation: "resolve", target: target))
        if status == 0 {
            outcome = .failure(UVError(code: UV_EAI_NONAME.rawValue, operation: "resolve", target: target))
            var entry = result
            while let current = entry {
                if let address = current.pointee.ai_addr, let parsed = SocketAddress(copying: address) {
                    outcome = .success(parsed)
                    break
                }
                entry = current.pointee.ai_next
            }
        }
        if let result { uv_freeaddrinfo(result) }
        let completion = self.completion
        self.completion = nil
        completion?(outcome)
    }
}
