import Foundation

/// `nsyncd bench sync`: three real `nsyncd` daemons (child processes, TLS on
/// loopback, durable Raft) with their PATHs in a scratch directory; the
/// benchmark writes into node 1 and measures until the other two hold the
/// same tree, verified by content hash. Workloads, in order: one large file
/// (then 4 KiB of it overwritten in place), many small files in folders,
/// single small edits one at a time; then each daemon's peak memory; then, with the daemons stopped, two references:
/// the TLS transport alone (`TLSBenchmark`) and the disk floor (the large
/// file's bytes written twice with fsync, as the two receivers must). Runs
/// on the calling thread.
public enum SyncBenchmark {
    public struct Options: Sendable {
        /// Parent of the scratch directory (the daemons' disk).
        public var directory: String = FileManager.default.temporaryDirectory.path
        /// Bytes of the large file; 0 skips it (and the disk floor).
        public var largeBytes = 1 << 30
        public var smallFiles = 10_000
        public var smallFolders = 100
        public var smallFileBytes = 4_096
        public var edits = 50
        /// Bytes of the TLS reference round; 0 skips it.
        public var tlsBytes = 256 << 20
        /// Measure the disk floor (with `largeBytes`).
        public var diskFloor = true
        /// Leave the scratch directory (daemons' trees and logs) in place.
        public var keep = false
        /// The daemons' log level (their logs are under the run's directory).
        public var logLevel = "warning"
        public init() {}
    }

    /// Figures of one run; MB is 10^6 bytes. Nil fields were skipped.
    public struct Result: Codable, Sendable {
        /// Large file: bytes / (appearance in node 1 -> verified on both others).
        public var largeMbPerS: Double?
        public var largeBytes: Int
        /// Copies of the large file that left node 1 (1 when receivers relay
        /// it along a chain, 2 when node 1 sends it to each).
        public var largeSentByOrigin: Double?
        /// 4 KiB of the large file overwritten in place in node 1: write ->
        /// verified on both others; and the file bytes both received meanwhile.
        public var largeEditS: Double?
        public var largeEditBytesReceived: UInt64?
        /// Small files: first write -> all verified on both others.
        public var smallFilesS: Double?
        public var smallFiles: Int
        /// Seconds the benchmark itself took to write the small files (no fsync).
        public var smallWriteS: Double?
        /// The small files' folder renamed in node 1: rename -> the new name
        /// verified and the old one gone on both others; and the file bytes
        /// both others received meanwhile (0: they moved their own copies).
        public var renameS: Double?
        public var renameBytesReceived: UInt64?
        /// One edit: write in node 1 -> new content present on both others.
        public var editP50Ms: Double?
        public var editP99Ms: Double?
        public var edits: Int
        /// The largest daemon's peak resident memory, and each one's.
        public var peakRssMib: Double
        public var peakRssMibPerNode: [String: Double]
        /// The largest daemon's peak resident memory once the large file and
        /// its edit have synced, before the small files (whose 10,000 paths,
        /// and their deletions after the rename, the index then holds).
        public var largePeakRssMib: Double?
        public var tlsMbPerS: Double?
        public var diskFloorMbPerS: Double?
        /// Where the daemons' trees were.
        public var directory: String
    }

    static let names = ["n1", "n2", "n3"]

    /// Runs the workloads; `executable` is the nsyncd binary to spawn,
    /// `certificateScript` certs/gen-certs.sh.
    public static func run(_ options: Options, executable: String, certificateScript: String,
                           progress: @escaping (String) -> Void = { _ in }) throws -> Result {
        let scratch = try BenchSupport.makeScratchDirectory(under: options.directory)
        if !options.keep { BenchCleanup.register(directory: scratch) }
        defer {
            if !options.keep {
                try? FileManager.default.removeItem(atPath: scratch)
                BenchCleanup.unregister(directory: scratch)
            }
        }
        let certificates = scratch + "/certs"
        try BenchSupport.generateCertificates(
            script: certificateScript, names: names + [TLSBenchmark.serverNode, TLSBenchmark.clientNode],
            directory: certificates)
        try FileDescriptor.makeDirectories(scratch + "/staging")

        var result = Result(largeBytes: options.largeBytes, smallFiles: options.smallFiles, edits: options.edits,
                            peakRssMib: 0, peakRssMibPerNode: [:], directory: scratch)
        let cluster = try DaemonCluster(executable: executable, directory: scratch, certificateDirectory: certificates,
                                        names: names, logLevel: options.logLevel)
        do {
            defer { cluster.stopAll() }
            try cluster.startAll()
            try cluster.waitUntilFormed()
            progress("3 daemons up in \(scratch)")
            let run = SyncWorkloads(cluster: cluster, staging: scratch + "/staging", progress: progress)
            if options.largeBytes > 0 {
                let patch: (seconds: Double, received: UInt64?)
                (result.largeMbPerS, result.largeSentByOrigin, patch) = try run.largeFile(size: options.largeBytes)
                (result.largeEditS, result.largeEditBytesReceived) = patch
                result.largePeakRssMib = names.indices.compactMap { cluster.peakResidentMiB($0) }.max()
            }
            if options.smallFiles > 0 {
                (result.smallFilesS, result.smallWriteS) = try run.smallFiles(
                    count: options.smallFiles, folders: max(1, options.smallFolders), size: options.smallFileBytes)
                (result.renameS, result.renameBytesReceived) = try run.renameSmallFiles()
            }
            if options.edits > 0 {
                let latencies = try run.edits(count: options.edits)
                result.editP50Ms = BenchSupport.milliseconds(latencies, percentile: 50)
                result.editP99Ms = BenchSupport.milliseconds(latencies, percentile: 99)
            }
            try run.checkIdentical()
            for (i, name) in names.enumerated() {
                result.peakRssMibPerNode[name] = cluster.peakResidentMiB(i)
            }
            result.peakRssMib = result.peakRssMibPerNode.values.max() ?? 0
        } catch {
            if options.keep { throw error }
            // The logs go with the scratch directory: keep their ends in the error.
            let logs = cluster.members.indices.map { "--- \(cluster.members[$0].name):\n\(cluster.logTail($0, lines: 8))" }
            throw BenchSupport.Failure("\(error)\n\(logs.joined(separator: "\n"))")
        }

        if options.tlsBytes > 0 {
            progress("reference: TLS transport, \(options.tlsBytes >> 20) MiB")
            result.tlsMbPerS = try TLSBenchmark.run(size: options.tlsBytes, rounds: 1, certDir: certificates).mbPerS
        }
        if options.diskFloor && options.largeBytes > 0 {
            progress("reference: disk floor, \(options.largeBytes >> 20) MiB written twice with fsync")
            result.diskFloorMbPerS = try BenchFiles.diskFloor(size: options.largeBytes, directory: scratch + "/floor")
        }
        return result
    }
}
