import Foundation
import Logging

/// The control socket `<PATH>/.nsync/control.sock` that `nsyncd status` and
/// `nsyncd wait` talk to: plain frames over a Unix socket (the state
/// directory is 0700, so only its owner reaches it). Loop thread only.
enum ControlMessage {
    static let statusRequest: UInt8 = 32
    static let statusResponse: UInt8 = 33
    /// Payload: timeout in milliseconds (UInt64).
    static let waitRequest: UInt8 = 34
    /// Payload: JSON `{"ok": Bool, "missing": [String]}`.
    static let waitResponse: UInt8 = 35
}

/// The answer to `nsyncd wait`.
public struct WaitResult: Codable, Sendable {
    public var ok: Bool
    public var missing: [String]
}

/// How a control socket path is handed to bind/connect. sockaddr_un holds
/// 107 bytes, so a deep PATH (over ~85 bytes) could neither run a daemon nor
/// be asked for its status; such a path is reached through
/// `/proc/self/fd/N/control.sock`, N an open descriptor of its directory
/// (bind and connect resolve it during the call). Any thread.
enum ControlSocketPath {
    static func withReachablePath<T>(_ path: String, _ body: (String) throws -> T) throws -> T {
        guard path.utf8.count >= 100, let slash = path.lastIndex(of: "/") else { return try body(path) }
        let directory = try FileDescriptor.open(String(path[..<slash]), .readOnly, options: [.directory])
        return try directory.closeAfter { try body("/proc/self/fd/\(directory.rawValue)" + path[slash...]) }
    }
}

extension Node {
    func startControlSocket() throws {
        let path = config.controlSocketPath
        // A socket left by a crashed daemon (we hold the lock, so none runs).
        _ = try? FileDescriptor.removeIfPresent(path)
        let listener = UnixListener(loop: loop)
        do {
            try ControlSocketPath.withReachablePath(path) { try listener.bind(path: $0) }
            try listener.listen { [unowned self] stream in serveControl(stream) }
        } catch {
            listener.close()
            throw StartupError.state("cannot create the control socket \(path): \(error) (remove what is at that path; no other nsyncd holds the lock)")
        }
        controlListener = listener
    }

    private func serveControl(_ stream: UnixStream) {
        // Any local process may connect: a header alone reserves little.
        var decoder = FrameDecoder(maxFrameSize: 1 << 16, reserveLimit: 4096)
        do {
            try stream.startReading(onRead: { [unowned self] bytes in
                decoder.append(bytes)
                do {
                    while let frame = try decoder.next() { answerControl(frame, on: stream) }
                } catch {
                    stream.close()
                }
            }, onEnd: { _ in stream.close() })
        } catch {
            stream.close()
        }
    }

    private func answerControl(_ frame: Frame, on stream: UnixStream) {
        switch frame.type {
        case ControlMessage.statusRequest:
            let json = currentStatus().jsonData()
            stream.write(Frame(type: ControlMessage.statusResponse, payload: [UInt8](json)).encoded())
        case ControlMessage.waitRequest:
            var payload = frame.payload
            let timeout = (try? payload.readInteger(as: UInt64.self)) ?? 30_000
            waitUntilSettled(stream: stream, deadline: loop.now + min(timeout, 24 * 3_600_000))
        default:
            stream.close()
        }
    }

    /// Answers once everything seen so far is held by every reachable member,
    /// or at the deadline with what is still missing.
    private func waitUntilSettled(stream: UnixStream, deadline: UInt64) {
        guard !stream.isClosing else { return }
        let (settled, missing) = isSettled()
        if settled || loop.now >= deadline || stopping {
            let result = WaitResult(ok: settled, missing: stopping ? ["the daemon is stopping"] : missing)
            let json = (try? JSONEncoder().encode(result)) ?? Data()
            stream.write(Frame(type: ControlMessage.waitResponse, payload: [UInt8](json)).encoded())
            return
        }
        loop.schedule(after: 20) { [weak self, weak stream] in
            guard let self, let stream else { return }
            waitUntilSettled(stream: stream, deadline: deadline)
        }
    }
}

/// The client side of the control socket, for the CLI. Runs its own loop
/// on the calling thread until the answer arrives or the time is up.
public enum ControlClient {
    public enum Failure: Error, CustomStringConvertible {
        case notRunning(String)
        case noAnswer
        public var description: String {
            switch self {
            case .notRunning(let path): "no nsyncd is running on \(path) (no answer on \(path)/.nsync/control.sock)"
            case .noAnswer: "the daemon did not answer in time"
            }
        }
    }

    public static func status(root: String, timeoutMilliseconds: UInt64 = 5_000) throws -> NodeStatus {
        let payload = try request(root: root, type: ControlMessage.statusRequest, payload: [], timeout: timeoutMilliseconds)
        return try NodeStatus.decode(Data(payload))
    }

    public static func wait(root: String, timeoutMilliseconds: UInt64) throws -> WaitResult {
        var payload = ByteBuffer()
        payload.writeInteger(timeoutMilliseconds)
        let answer = try request(root: root, type: ControlMessage.waitRequest, payload: payload.bytes,
                                 timeout: timeoutMilliseconds + 5_000)
        return try JSONDecoder().decode(WaitResult.self, from: Data(answer))
    }

    private static func request(root: String, type: UInt8, payload: [UInt8], timeout: UInt64) throws -> [UInt8] {
        let loop = try EventLoop()
        defer { loop.close() }
        let stream = UnixStream(loop: loop)
        var answer: [UInt8]?
        var failed = false
        var decoder = FrameDecoder()
        let connected = { (error: UVError?) in
            if error != nil {
                failed = true
                return
            }
            try? stream.startReading(onRead: { bytes in
                decoder.append(bytes)
                if let frame = try? decoder.next() { answer = Array(frame.payload.readableView) }
            }, onEnd: { _ in failed = true })
            stream.write(Frame(type: type, payload: payload).encoded())
        }
        do {
            try ControlSocketPath.withReachablePath(root + "/.nsync/control.sock") {
                stream.connect(path: $0, completion: connected)
            }
        } catch {
            stream.close()
            throw Failure.notRunning(root)
        }
        loop.run(until: { answer != nil || failed }, timeout: timeout)
        stream.close()
        if let answer { return answer }
        throw failed ? Failure.notRunning(root) : Failure.noAnswer
    }
}
