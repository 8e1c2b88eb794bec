import Foundation
import Histogram

/// Small pieces every `nsyncd bench` driver uses: a monotonic clock, polling
/// with a deadline, latency summaries, certificates, free loopback ports and
/// JSON output. Stateless; any thread.
public enum BenchSupport {
    /// What stops a benchmark: a deadline passed, a daemon died, a tree did
    /// not converge. The description says what happened and where to look.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// Monotonic nanoseconds (not wall time: NTP steps must not show up as latency).
    static func now() -> UInt64 {
        DispatchTime.now().uptimeNanoseconds
    }

    static func seconds(since start: UInt64) -> Double {
        Double(now() - start) / 1e9
    }

    static func sleep(milliseconds: Double) {
        usleep(UInt32(max(0, milliseconds * 1000)))
    }

    /// Calls `condition` every `interval` ms until it returns true; throws
    /// `what` (with the last `reason` the caller noted) when `timeout`
    /// seconds pass first.
    static func poll(_ what: String, timeout: Double, interval: Double = 20,
                     _ condition: () throws -> Bool) throws {
        let deadline = now() + UInt64(timeout * 1e9)
        while true {
            if try condition() { return }
            if now() >= deadline { throw Failure("\(what): not done after \(Int(timeout)) s") }
            sleep(milliseconds: interval)
        }
    }

    static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// A histogram of latencies in microseconds, 3 significant digits, up to 10 minutes.
    static func latencyHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    }

    /// The `percentile` of a microsecond histogram, in milliseconds.
    static func milliseconds(_ histogram: Histogram<UInt64>, percentile: Double) -> Double {
        Double(histogram.valueAtPercentile(percentile)) / 1000
    }

    /// One JSON object, keys sorted and in snake_case (`commitsPerS` -> `commits_per_s`).
    public static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Runs `script` (certs/gen-certs.sh) to put a CA and a certificate per
    /// name into `directory`.
    static func generateCertificates(script: String, names: [String], directory: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: script)
        process.arguments = ["--out", directory] + names
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure("\(script) failed: \(String(decoding: output, as: UTF8.self))")
        }
    }

    /// A new empty directory `<parent>/nsyncd-bench-<random>`; the caller removes it.
    static func makeScratchDirectory(under parent: String, prefix: String = "nsyncd-bench") throws -> String {
        let path = "\(parent)/\(prefix)-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileDescriptor.makeDirectories(path, permissions: 0o700)
        // The daemons refuse relative or symlinked roots less gracefully than we can.
        return URL(fileURLWithPath: path).resolvingSymlinksInPath().path
    }

    /// `count` distinct TCP ports that were free on 127.0.0.1 a moment ago.
    /// They come from below Linux's ephemeral range (32768+), so an outgoing
    /// connection of another daemon does not take one between now and the
    /// moment its node binds it.
    static func freePorts(_ count: Int) throws -> [Int] {
        let loop = try EventLoop()
        defer { loop.close() }
        var ports: [Int] = []
        var attempts = 0
        while ports.count < count {
            attempts += 1
            guard attempts < 1_000 else { throw Failure("cannot find \(count) free TCP ports on 127.0.0.1 in 20000-32000") }
            let port = Int.random(in: 20_000..<32_000)
            guard !ports.contains(port) else { continue }
            let listener = TCPListener(loop: loop)
            defer { listener.close() }
            // libuv reports EADDRINUSE at listen(), not bind().
            guard (try? listener.bind(host: "127.0.0.1", port: port)) != nil,
                  (try? listener.listen(onConnection: { $0.close() })) != nil else { continue }
            ports.append(port)
        }
        return ports
    }
}
