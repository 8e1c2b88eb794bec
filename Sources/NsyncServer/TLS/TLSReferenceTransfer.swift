import CLibUV  // for SOCK_STREAM, which Glibc's module map does not export
import COpenSSL
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The yardstick for `TLSBenchmark`: OpenSSL as its manual shows it —
/// `SSL_set_fd` on blocking loopback sockets, one thread writing with
/// `SSL_write`, one reading with `SSL_read`, no event loop. Uses the same
/// `TLSContext`s as our transport, so cipher, TLS options and read-ahead are
/// the same. Each call runs one round on two threads of its own.
enum TLSReferenceTransfer {
    /// Sends `size` bytes in `payload`-sized `SSL_write`s; returns the
    /// seconds from the first write to the last byte read, and the cipher.
    static func run(size: Int, payload: UnsafeRawBufferPointer,
                    server: TLSContext, client: TLSContext) throws -> (Double, String) {
        let listener = try listen()
        defer { Glibc.close(listener.fd) }
        let state = ReferenceRound(payload: payload)
        let serverThread = Thread {
            defer { state.serverDone.signal() }
            state.serverError = receive(size: size, chunk: state.payload.count, listener: listener.fd, context: server, into: state)
        }
        let clientThread = Thread {
            defer { state.clientDone.signal() }
            state.clientError = send(size: size, payload: state.payload, port: listener.port, context: client, into: state)
        }
        serverThread.start()
        clientThread.start()
        state.serverDone.wait()
        state.clientDone.wait()
        if let error = state.serverError ?? state.clientError { throw error }
        guard state.cipher == "TLS_AES_128_GCM_SHA256" else {
            throw TLSBenchmark.Failure(description: "reference negotiated \(state.cipher), not TLS_AES_128_GCM_SHA256")
        }
        return (Double(state.end - state.start) / 1e9, state.cipher)
    }

    /// Written by one thread each, read by the caller after the semaphores.
    private final class ReferenceRound {
        let payload: UnsafeRawBufferPointer
        init(payload: UnsafeRawBufferPointer) { self.payload = payload }
        let serverDone = DispatchSemaphore(value: 0)
        let clientDone = DispatchSemaphore(value: 0)
        var start: UInt64 = 0
        var end: UInt64 = 0
        var cipher = ""
        var serverError: Error?
        var clientError: Error?
    }

    private static func failure(_ what: String) -> Error {
        TLSError.fromErrorQueue(.protocolViolation, "reference \(what)", extra: [String(cString: strerror(errno))])
    }

    private static func listen() throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SystemError(errno: errno, operation: "reference socket") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(fd, sa, length) == 0 && Glibc.listen(fd, 1) == 0 && getsockname(fd, sa, &length) == 0
            }
        }
        guard ok else {
            let error = SystemError(errno: errno, operation: "reference listen on 127.0.0.1")
            Glibc.close(fd)
            throw error
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    private static func receive(size: Int, chunk: Int, listener: Int32, context: TLSContext,
                                into state: ReferenceRound) -> Error? {
        let fd = accept(listener, nil, nil)
        guard fd >= 0 else { return SystemError(errno: errno, operation: "reference accept") }
        defer { Glibc.close(fd) }
        guard let ssl = SSL_new(context.raw) else { return failure("SSL_new") }
        defer { SSL_free(ssl) }
        SSL_set_fd(ssl, fd)
        ERR_clear_error()
        guard SSL_accept(ssl) == 1 else { return failure("SSL_accept") }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        var received = 0
        while received < size {
            var n = 0
            ERR_clear_error()
            guard SSL_read_ex(ssl, buffer, chunk, &n) == 1 else { return failure("SSL_read after \(received) bytes") }
            received += n
        }
        state.end = TLSBenchmark.monotonicNanoseconds()
        // Wait for the client's close_notify, then answer it.
        var n = 0
        _ = SSL_read_ex(ssl, buffer, chunk, &n)
        _ = SSL_shutdown(ssl)
        return nil
    }

    private static func send(size: Int, payload: UnsafeRawBufferPointer, port: Int, context: TLSContext,
                             into state: ReferenceRound) -> Error? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return SystemError(errno: errno, operation: "reference socket") }
        defer { Glibc.close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { return SystemError(errno: errno, operation: "reference connect 127.0.0.1:\(port)") }
        guard let ssl = SSL_new(context.raw) else { return failure("SSL_new") }
        defer { SSL_free(ssl) }
        SSL_set_fd(ssl, fd)
        ERR_clear_error()
        guard SSL_connect(ssl) == 1 else { return failure("SSL_connect") }
        state.cipher = String(cString: SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)))
        state.start = TLSBenchmark.monotonicNanoseconds()
        var sent = 0
        while sent < size {
            let n = min(payload.count, size - sent)
            var written = 0
            ERR_clear_error()
            guard SSL_write_ex(ssl, payload.baseAddress!, n, &written) == 1 else { return failure("SSL_write after \(sent) bytes") }
            sent += written
        }
        // close_notify, then wait for the server's.
        _ = SSL_shutdown(ssl)
        var n = 0
        var scratch: UInt8 = 0
        _ = SSL_read_ex(ssl, &scratch, 1, &n)
        return nil
    }
}
