import CLibUV

/// The part of a TCP or Unix-domain connection that is just a libuv stream:
/// reading into the loop's shared buffer, writing owned bytes without
/// copying, backpressure, shutdown and close. Loop thread only.
///
/// Reads are delivered as a view that is valid only during the callback (the
/// next read reuses the memory); copy what you keep. `nread == 0` is not the
/// end of the stream — only EOF or an error is, reported once via `onEnd`.
public class StreamHandle: Handle {
    private var onRead: ((UnsafeRawBufferPointer) -> Void)?
    private var onEnd: ((UVError?) -> Void)?

    var stream: UnsafeMutablePointer<uv_stream_t> { memory.assumingMemoryBound(to: uv_stream_t.self) }

    /// What error messages name: the peer address or socket path.
    var errorTarget: String? { nil }

    // MARK: Reading

    /// Starts delivering received bytes to `onRead` until `stopReading()`,
    /// close, or the end of the stream: `onEnd(nil)` on EOF (the peer shut
    /// down its side; writing may continue), `onEnd(error)` on a failure (then
    /// close the stream). Both callbacks are dropped after `onEnd`.
    public func startReading(onRead: @escaping (UnsafeRawBufferPointer) -> Void,
                             onEnd: @escaping (UVError?) -> Void) throws {
        guard !isClosing else { throw UVError.canceled("read", errorTarget) }
        self.onRead = onRead
        self.onEnd = onEnd
        do {
            try uvCheck(uv_read_start(stream, { handle, _, buf in
                let loop = EventLoop.owner(of: handle!.pointee.loop)
                buf!.pointee = uv_buf_init(loop.readBuffer.baseAddress!.assumingMemoryBound(to: CChar.self),
                                           UInt32(loop.readBuffer.count))
            }, { stream, nread, buf in
                guard let owner = Handle.owner(of: stream, as: StreamHandle.self) else { return }
                if nread > 0 {
                    owner.onRead?(UnsafeRawBufferPointer(start: buf!.pointee.base, count: nread))
                } else if nread < 0 {
                    owner.finishReading(Int32(nread) == UV_EOF.rawValue
                        ? nil : UVError(code: Int32(nread), operation: "read", target: owner.errorTarget))
                }
                // nread == 0: the socket had nothing after all (EAGAIN); not the end.
            }), "read", target: errorTarget)
        } catch {
            self.onRead = nil
            self.onEnd = nil
            throw error
        }
    }

    /// Stops delivering reads (the kernel buffers, then the peer is slowed by
    /// TCP flow control); `startReading` resumes.
    public func stopReading() {
        guard !isClosing else { return }
        uv_read_stop(stream)
    }

    private func finishReading(_ error: UVError?) {
        uv_read_stop(stream)
        let end = onEnd
        onRead = nil
        onEnd = nil
        end?(error)
    }

    // MARK: Writing

    /// Bytes queued in libuv and not yet handed to the kernel: stop producing
    /// while it is above your high-water mark.
    public var writeQueueSize: Int { isClosing ? 0 : uv_stream_get_write_queue_size(stream) }

    /// Writes `bytes`, keeping the array alive (not copied) until `completion`,
    /// which always runs once, on the loop thread, after the bytes reached the
    /// kernel or failed (canceled if the stream closed first).
    public func write(_ bytes: [UInt8], completion: ((UVError?) -> Void)? = nil) {
        write(bytes[...], completion: completion)
    }

    /// Writes the readable bytes of `buffer` without copying them.
    public func write(_ buffer: ByteBuffer, completion: ((UVError?) -> Void)? = nil) {
        write(buffer.readableView, completion: completion)
    }

    /// Writes `bytes` (a slice of an array kept alive, not copied).
    public func write(_ bytes: ArraySlice<UInt8>, completion: ((UVError?) -> Void)? = nil) {
        let request = makeWriteRequest(completion)
        request.slice = bytes
        // Our copy of the slice holds the array's storage and is never mutated,
        // so its address stays valid until the write callback (a mutation by the
        // caller copies on write and leaves this storage alone).
        var buf = bytes.withUnsafeBytes { uv_buf_init(Self.base($0), UInt32($0.count)) }
        submit(request, &buf, 1)
    }

    /// Writes several buffers in one `uv_write` (one `writev`), e.g. a frame
    /// header and its payload, none of them copied.
    public func write(gathering slices: [ArraySlice<UInt8>], completion: ((UVError?) -> Void)? = nil) {
        let request = makeWriteRequest(completion)
        request.slices = slices
        var bufs = request.slices.map { slice in
            slice.withUnsafeBytes { uv_buf_init(Self.base($0), UInt32($0.count)) }
        }
        if bufs.isEmpty { bufs.append(uv_buf_init(nil, 0)) }   // uv_write wants at least one
        submit(request, &bufs, UInt32(bufs.count))
    }

    /// Writes the valid bytes of `buffer`; leave it unchanged until `completion`.
    public func write(_ buffer: IOBuffer, completion: ((UVError?) -> Void)? = nil) {
        let request = makeWriteRequest(completion)
        request.buffer = buffer
        var buf = uv_buf_init(buffer.base.assumingMemoryBound(to: CChar.self), UInt32(buffer.count))
        submit(request, &buf, 1)
    }

    private static func base(_ bytes: UnsafeRawBufferPointer) -> UnsafeMutablePointer<CChar>? {
        bytes.baseAddress.map { UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: CChar.self)) }
    }

    private func makeWriteRequest(_ completion: ((UVError?) -> Void)?) -> StreamRequest {
        StreamRequest(type: UV_WRITE) { status in
            // Strong: the stream outlives its requests (a failed submission
            // completes after the close callback may have run).
            completion?(status < 0 ? UVError(code: status, operation: "write", target: self.errorTarget) : nil)
        }
    }

    private func submit(_ request: StreamRequest, _ bufs: UnsafePointer<uv_buf_t>, _ count: UInt32) {
        let rc = isClosing ? UV_ECANCELED.rawValue
            : uv_write(request.pointer(as: uv_write_t.self), stream, bufs, count) { req, status in
                StreamRequest.complete(req, status: status)
            }
        if rc < 0 { request.failLater(rc, on: loop) }
    }

    // MARK: Ending

    /// Half-closes: sends FIN after the queued writes; reading goes on.
    /// `completion` runs once the queue drained (or failed / was canceled).
    public func shutdown(_ completion: ((UVError?) -> Void)? = nil) {
        let request = StreamRequest(type: UV_SHUTDOWN) { status in
            completion?(status < 0 ? UVError(code: status, operation: "shutdown", target: self.errorTarget) : nil)
        }
        let rc = isClosing ? UV_ECANCELED.rawValue
            : uv_shutdown(request.pointer(as: uv_shutdown_t.self), stream) { req, status in
                StreamRequest.complete(req, status: status)
            }
        if rc < 0 { request.failLater(rc, on: loop) }
    }

    /// Takes the next pending connection of `listener` into this (fresh) stream.
    func accept(from listener: Handle) throws {
        try uvCheck(uv_accept(listener.memory.assumingMemoryBound(to: uv_stream_t.self), stream), "accept")
    }

    override func didClose() {
        onRead = nil
        onEnd = nil
        super.didClose()
    }
}
