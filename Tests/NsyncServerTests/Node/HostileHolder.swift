import Foundation
import Logging
@testable import NsyncServer

/// A file-server port that answers as a cluster member (real TLS with that
/// member's certificate, a correct Hello) and then lies the way the test
/// file's name says: the other side of `HostilePeer`, to show what a
/// fetcher does with a holder that is broken or hostile. It serves the
/// bytes of the real member's copy (`sourceRoot`), so that an honest
/// answer is possible too. Runs its own EventLoop on a thread of its own
/// until `stop()`; what it saw is read from the test thread.
final class HostileHolder {
    /// How to answer a request for a file whose name (without extension) is the lie's name.
    enum Lie: String, CaseIterable {
        /// The file's bytes, as an honest holder sends them.
        case honest
        /// One byte of the file flipped: the SHA-256 at the end differs.
        case flipped
        /// Half the bytes, then the end.
        case short
        /// Half the bytes with one flipped, then the end: a `.part` that
        /// starts wrong.
        case flippedShort = "flipped-short"
        /// A header naming one byte more than the file has.
        case resized
        /// The first data frame 4 KiB past the requested offset.
        case skipped
        /// The last data frame running 4 KiB past the file's end.
        case overlong
        /// `.same` for every byte, whether or not the fetcher sent block digests.
        case allSame = "all-same"
        /// Honest while the fetcher sends no block digests; with digests,
        /// `.same` for every byte (its held version is not the new one).
        case sameWhenAsked = "same-when-asked"
        /// `.zeros` for the whole file (a hole where there are bytes).
        case zeros
        /// `.zeros` running 4 KiB past the file's end.
        case zerosOverlong = "zeros-overlong"
        /// A frame of a type the protocol does not have.
        case garbage
        /// Half the bytes, then nothing more, ever (a disk that hung).
        case stalls
        /// The first request for the file as `stalls`, every later one as `honest`.
        case stallsFirst = "stalls-first"
    }

    struct Seen {
        var path: String
        var offset: UInt64
        var withBlocks: Bool
    }

    private(set) var port = 0
    private let lock = NSLock()
    private var requests: [Seen] = []
    private var loop: EventLoop?
    /// Loop thread only.
    private var channels: [Channel] = []
    private var closes = 0
    private var ready = 0
    private var source = ""
    private var stopping = false
    private var started: Result<Int, Error> = .failure(ClusterError("the hostile holder's thread did not start"))
    private let done = DispatchSemaphore(value: 0)

    /// Listens on 127.0.0.1 (a free port) as `name`, with that member's
    /// certificate from `certificates`.
    init(certificates: TestCertificates, name: String) throws {
        let started = DispatchSemaphore(value: 0)
        let thread = Thread { [unowned self] in
            do {
                let loop = try EventLoop()
                let context = try TLSContext(role: .server, caPath: certificates.caPath,
                                             certificatePath: certificates.certificatePath(name),
                                             keyPath: certificates.keyPath(name))
                let listener = TCPListener(loop: loop)
                try listener.bind(host: "127.0.0.1", port: 0)
                self.lock.withLock { self.loop = loop }
                try listener.listen { stream in
                    guard let channel = self.accept(stream, loop: loop, context: context, name: name) else { return }
                    self.channels.append(channel)
                }
                self.lock.withLock { self.started = .success(listener.localPort ?? 0) }
                started.signal()
                while !self.isStopping { _ = loop.run(until: { self.isStopping }, timeout: 100) }
                self.channels.forEach { $0.close() }
                listener.close()
                _ = loop.run(until: { false }, timeout: 50)
                self.lock.withLock { self.loop = nil }
                loop.close()
            } catch {
                self.lock.withLock { self.started = .failure(error) }
                started.signal()
            }
            self.done.signal()
        }
        thread.start()
        started.wait()
        port = try lock.withLock { self.started }.get()
    }

    /// Stops the loop and closes every connection (waits up to 5 s).
    func stop() {
        lock.withLock { stopping = true }
        _ = done.wait(timeout: .now() + 5)
    }

    /// The real member's directory, whose files are the bytes served.
    func serve(from root: String) { lock.withLock { source = root } }

    /// Offers `offer` on every ready connection, as an origin does while it
    /// hashes a large file (`Node.offer`).
    func offer(_ offer: FileOffer) {
        guard let loop = lock.withLock({ self.loop }) else { return }
        let frame = HostilePeer.encode(.offer(offer))
        _ = loop.execute { [self] in
            for channel in channels where channel.isReady { channel.send(frame) }
        }
    }

    /// The requests received for `path`, in order.
    func requests(for path: String) -> [Seen] { lock.withLock { requests.filter { $0.path == path } } }

    /// Connections that ended (the fetcher closed them, or we did at stop).
    var closedConnections: Int { lock.withLock { closes } }

    /// Connections whose Hello exchange completed.
    var readyConnections: Int { lock.withLock { ready } }

    private var isStopping: Bool { lock.withLock { stopping } }

    private func accept(_ stream: TCPStream, loop: EventLoop, context: TLSContext, name: String) -> Channel? {
        var logger = Logger(label: "hostile-holder")
        logger.logLevel = .critical
        guard let connection = try? TLSConnection(stream: stream, context: context, loop: loop, logger: logger) else {
            stream.close()
            return nil
        }
        let channel = Channel(connection: connection, kind: .file, localName: name, clusterID: context.clusterID,
                              logger: logger)
        channel.onFrame = { [unowned self, unowned channel] frame in
            var payload = frame.payload
            guard case .request(let request)? = try? TransferMessage.decode(type: frame.type, payload: &payload) else { return }
            lock.withLock {
                requests.append(Seen(path: request.path, offset: request.offset, withBlocks: request.blocks != nil))
            }
            for bytes in answer(request) { channel.send(bytes) }
        }
        channel.onReady = { [unowned self] _ in lock.withLock { ready += 1 } }
        channel.onClose = { [unowned self] _ in lock.withLock { closes += 1 } }
        channel.start()
        return channel
    }

    /// The frames that answer `request`, as the file's name says.
    private func answer(_ request: FetchRequest) -> [[UInt8]] {
        let name = ((request.path as NSString).lastPathComponent as NSString).deletingPathExtension
        let root = lock.withLock { source }
        guard var lie = Lie(rawValue: name), let content = FileManager.default.contents(atPath: root + "/" + request.path) else {
            return [HostilePeer.encode(.header(FetchHeader(requestID: request.requestID, status: .notFound,
                                                           message: "the hostile holder has no \(request.path)")))]
        }
        if lie == .stallsFirst {
            lie = lock.withLock { requests.filter { $0.path == request.path }.count } > 1 ? .honest : .stalls
        }
        var file = [UInt8](content)
        let id = request.requestID
        let start = Int(min(request.offset, UInt64(file.count)))
        var end = request.length == .max ? file.count : Int(min(UInt64(file.count), request.offset + request.length))
        var size = UInt64(file.count)
        var frames: [[UInt8]] = []
        var from = start
        switch lie {
        case .honest, .overlong: break
        case .sameWhenAsked where request.blocks == nil: break
        case .flipped, .flippedShort:
            file[(start + end) / 2] ^= 0xFF
            if lie == .flippedShort { end = start + (end - start) / 2 }
        case .short: end = start + (end - start) / 2
        case .resized: size += 1
        case .skipped: from += 4096
        case .allSame, .sameWhenAsked:
            return [HostilePeer.encode(.header(FetchHeader(requestID: id, status: .ok, size: size))),
                    HostilePeer.encode(.same(requestID: id, offset: UInt64(start), length: UInt64(end - start))),
                    HostilePeer.encode(.end(requestID: id))]
        case .zeros, .zerosOverlong:
            return [HostilePeer.encode(.header(FetchHeader(requestID: id, status: .ok, size: size))),
                    HostilePeer.encode(.zeros(requestID: id, offset: UInt64(start),
                                              length: UInt64(end - start) + (lie == .zerosOverlong ? 4096 : 0))),
                    HostilePeer.encode(.end(requestID: id))]
        case .garbage:
            return [HostilePeer.encode(.header(FetchHeader(requestID: id, status: .ok, size: size))),
                    Frame(type: 99, payload: ByteBuffer(bytes: [1, 2, 3])).encoded()]
        case .stalls, .stallsFirst:  // (`.stallsFirst` was mapped to one of the others above)
            end = start + (end - start) / 2
        }
        frames.append(HostilePeer.encode(.header(FetchHeader(requestID: id, status: .ok, size: size))))
        if lie == .overlong { file += [UInt8](repeating: 0x5A, count: 4096) }
        let last = lie == .overlong ? file.count : end
        let chunk = 64 << 10
        while from < last {
            let upTo = min(last, from + chunk)
            frames.append(HostilePeer.encode(.data(requestID: id, offset: UInt64(from), bytes: file[from..<upTo])))
            from = upTo
        }
        if lie != .stalls { frames.append(HostilePeer.encode(.end(requestID: id))) }
        return frames
    }
}
