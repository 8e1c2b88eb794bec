import CLibUV

/// One libuv stream request (write, shutdown or connect) together with what
/// must outlive it: the bytes being written and the completion. Its `data`
/// pointer holds a retain from submission until the request's callback, which
/// libuv always calls (with a canceled status if the handle closed first).
/// Loop thread only.
final class StreamRequest {
    let memory: UnsafeMutableRawPointer
    private var completion: ((Int32) -> Void)?
    // Keep-alive for written bytes; only one of these is used per request.
    var slice: ArraySlice<UInt8> = []
    var slices: [ArraySlice<UInt8>] = []
    var buffer: IOBuffer?

    init(type: uv_req_type, completion: @escaping (Int32) -> Void) {
        memory = .allocate(byteCount: uv_req_size(type), alignment: 16)
        self.completion = completion
        memory.assumingMemoryBound(to: uv_req_t.self).pointee.data = Unmanaged.passRetained(self).toOpaque()
    }

    deinit { memory.deallocate() }

    func pointer<T>(as type: T.Type) -> UnsafeMutablePointer<T> { memory.assumingMemoryBound(to: T.self) }

    /// The libuv callback of the request: releases the submission retain and
    /// runs the completion.
    static func complete(_ request: UnsafeMutableRawPointer?, status: Int32) {
        let req = request!.assumingMemoryBound(to: uv_req_t.self)
        let owner = Unmanaged<StreamRequest>.fromOpaque(req.pointee.data).takeRetainedValue()
        req.pointee.data = nil
        let completion = owner.completion
        owner.completion = nil
        completion?(status)
    }

    /// The submission failed synchronously: report it through the completion
    /// from a later loop iteration, so a completion never runs inside the
    /// call that submitted it.
    func failLater(_ status: Int32, on loop: EventLoop) {
        let memory = self.memory
        if !loop.execute({ StreamRequest.complete(memory, status: status) }) {
            StreamRequest.complete(memory, status: status) // the loop is closing: no later iteration
        }
    }
}
