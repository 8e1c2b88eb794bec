import Histogram

/// A closed-loop stream of small opaque commands through one node's
/// `RaftDriver`, the load of `nsyncd bench raft`: `window` commands are
/// always outstanding; the commands issued in one loop turn travel together
/// in one entry (as Node packs a burst of file changes into one index
/// command), and each command's latency runs from its issue to its entry's
/// committed outcome. A failed entry's commands are issued again after a
/// short pause. Loop thread of that node only.
final class ProposalLoad {
    /// What happened between `beginRecording` and `endRecording`.
    struct Sample {
        var committed = 0
        var failed = 0
        var entries = 0
        var nanoseconds: UInt64 = 0
        /// Per committed command, in microseconds.
        var latencies = BenchSupport.latencyHistogram()
    }

    private let driver: RaftDriver
    private let loop: EventLoop
    let window: Int
    let commandBytes: Int
    let maxCommandsPerEntry: Int

    private(set) var outstanding = 0
    /// Issue times of the commands waiting for the next entry.
    private var queued: [UInt64] = []
    private var flushScheduled = false
    private var stopped = false
    private var nextCommand: UInt64 = 0
    private var sample: Sample?
    private var recordingStart: UInt64 = 0
    private(set) var lastFailure: ProposalFailure?

    init(driver: RaftDriver, loop: EventLoop, window: Int, commandBytes: Int, maxCommandsPerEntry: Int) {
        precondition(window > 0 && commandBytes >= 8 && maxCommandsPerEntry > 0)
        self.driver = driver
        self.loop = loop
        self.window = window
        self.commandBytes = commandBytes
        self.maxCommandsPerEntry = maxCommandsPerEntry
    }

    func start() {
        refill()
    }

    /// Issues no new commands; those outstanding still finish.
    func stop() {
        stopped = true
    }

    func beginRecording() {
        sample = Sample()
        recordingStart = BenchSupport.now()
    }

    func endRecording() -> Sample {
        var result = sample ?? Sample()
        result.nanoseconds = BenchSupport.now() - recordingStart
        sample = nil
        return result
    }

    private func refill() {
        guard !stopped, outstanding < window else { return }
        let now = BenchSupport.now()
        queued.append(contentsOf: repeatElement(now, count: window - outstanding))
        outstanding = window
        guard !flushScheduled else { return }
        flushScheduled = true
        // At the end of this loop turn, so every completion of this turn joins the entry.
        loop.schedule(after: 0) { [self] in flush() }
    }

    private func flush() {
        flushScheduled = false
        let pending = queued
        queued.removeAll(keepingCapacity: true)
        var start = 0
        while start < pending.count {
            let times = Array(pending[start..<min(start + maxCommandsPerEntry, pending.count)])
            start += times.count
            driver.propose(encodeEntry(commands: times.count)) { [self] outcome in finish(times, outcome) }
        }
    }

    /// `0xFF | u32 count | count x (u64 sequence | filler)`: the node skips
    /// entries that start with `Node.opaqueEntryMarker`.
    private func encodeEntry(commands: Int) -> [UInt8] {
        var buffer = ByteBuffer(capacity: 5 + commands * commandBytes)
        buffer.writeInteger(Node.opaqueEntryMarker)
        buffer.writeInteger(UInt32(commands))
        let filler = [UInt8](repeating: 0x5A, count: commandBytes - 8)
        for _ in 0..<commands {
            buffer.writeInteger(nextCommand)
            buffer.writeBytes(filler)
            nextCommand += 1
        }
        return buffer.bytes
    }

    private func finish(_ times: [UInt64], _ outcome: ProposalOutcome) {
        let now = BenchSupport.now()
        outstanding -= times.count
        switch outcome {
        case .committed:
            if sample != nil {
                sample!.committed += times.count
                sample!.entries += 1
                for issued in times { sample!.latencies.record((now - issued) / 1_000) }
            }
            refill()
        case .failed(let why):
            lastFailure = why
            if sample != nil { sample!.failed += times.count }
            // No leader or a lost one: give the election a moment instead of spinning.
            loop.schedule(after: 10) { [self] in refill() }
        }
    }
}
