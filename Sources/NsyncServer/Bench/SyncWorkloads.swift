import Foundation
import Histogram

/// The sync benchmark's workloads against a running cluster: each writes
/// into the first daemon's PATH and measures until the other daemons hold
/// the same bytes, verified by SHA-256. Keeps `expected`, the digest every
/// node's tree must end up equal to. Benchmark thread only.
final class SyncWorkloads {
    let cluster: DaemonCluster
    /// A directory on the daemons' file system, outside every PATH.
    let staging: String
    let progress: (String) -> Void
    private(set) var expected = TreeDigest()

    init(cluster: DaemonCluster, staging: String, progress: @escaping (String) -> Void) {
        self.cluster = cluster
        self.staging = staging
        self.progress = progress
    }

    private var origin: String { cluster.members[0].root }
    private var receivers: [Int] { Array(1..<cluster.count) }
    private func root(_ i: Int) -> String { cluster.members[i].root }
    private func name(_ i: Int) -> String { cluster.members[i].name }

    /// One file of `size` bytes, made in the staging directory and renamed
    /// into node 1, so it appears whole at one instant; returns MB/s from
    /// that instant to verified on every other node. Then 4 KiB of it are
    /// overwritten in place (`patchLargeFile`). The file is deleted
    /// afterwards (and the deletion waited for), to leave room for the rest.
    func largeFile(size: Int) throws -> (mbPerS: Double, sentByOrigin: Double?, patch: (seconds: Double, received: UInt64?)) {
        progress("large file: writing \(size >> 20) MiB to the staging directory (not timed)")
        let name = "large.bin"
        let staged = staging + "/" + name
        let digest = try BenchFiles.writeLarge(size: size, to: staged, seed: 1)
        let sentBefore = cluster.members.indices.map { cluster.status($0)?.bytesSent }
        let start = BenchSupport.now()
        try FileDescriptor.rename(staged, to: origin + "/" + name)
        expected.entries[name] = .file(size: Int64(size), sha256: digest)
        let done = try converge("\(name) on every node", timeout: 120 + Double(size) / 5e6, interval: 5,
                                reverifyAfter: 2_000) {
            receivers.allSatisfy { (try? FileSystem.status(root($0) + "/" + name))?.size == Int64(size) }
        } verify: {
            try receivers.compactMap { i in
                let hash = try FileSystem.hashFile(root(i) + "/" + name, into: SHA256())
                return hash.digest == digest ? nil : "\(name) on \(self.name(i)) has the full size but other content"
            }
        }
        let seconds = Double(done - start) / 1e9
        let rate = Double(size) / seconds / 1e6
        progress(String(format: "large file: %.1f s, %.0f MB/s", seconds, rate))
        // Who sent it: node 1 once and a receiver once when it is relayed.
        let sent = cluster.members.indices.map { i -> UInt64? in
            guard let before = sentBefore[i], let after = cluster.status(i)?.bytesSent, after >= before else { return nil }
            return after - before
        }
        var sentByOrigin: Double?
        if sent.allSatisfy({ $0 != nil }) {
            sentByOrigin = Double(sent[0]!) / Double(size)
            progress("large file: sent " + cluster.members.indices.map { "by \(self.name($0)) \(NodeStatus.bytes(sent[$0]!))" }
                .joined(separator: ", ") + String(format: " (node 1 sent %.2f copies)", sentByOrigin!))
        }
        let patch = try patchLargeFile(name, size: size)
        try FileSystem.removeFile(origin + "/" + name)
        expected.entries[name] = nil
        try BenchSupport.poll("the deletion of \(name) on every node", timeout: 120, interval: 20) {
            try cluster.checkAlive(Array(0..<cluster.count))
            return receivers.allSatisfy { !FileDescriptor.exists(root($0) + "/" + name) }
        }
        return (rate, sentByOrigin, patch)
    }

    /// 4 KiB overwritten in place in the middle of node 1's `name` (a
    /// database page, say); returns the seconds from the write to the new
    /// content verified on every other node, and the file bytes they
    /// received meanwhile (a few blocks, not the file).
    private func patchLargeFile(_ name: String, size: Int) throws -> (seconds: Double, received: UInt64?) {
        let offset = size / 2 + 123
        let bytes = BenchFiles.content(seed: 77, count: 4_096)
        progress("edit in place: 4 KiB overwritten at byte \(offset) of \(name)")
        // The new digest, before the clock starts: the file's bytes with the patch in place.
        let hasher = SHA256()
        let reader = try FileDescriptor.open(origin + "/" + name, .readOnly)
        try reader.closeAfter {
            var at = 0
            while at < size {
                var chunk = try reader.read(upToCount: min(1 << 20, size - at), at: Int64(at))
                guard !chunk.isEmpty else { throw BenchSupport.Failure("\(name) is shorter than \(size) bytes") }
                let from = max(at, offset), to = min(at + chunk.count, offset + bytes.count)
                if from < to { chunk.replaceSubrange((from - at)..<(to - at), with: bytes[(from - offset)..<(to - offset)]) }
                hasher.update(chunk)
                at += chunk.count
            }
        }
        let digest = hasher.finalize()
        let receivedBefore = receivers.map { cluster.status($0)?.bytesReceived }
        let start = BenchSupport.now()
        let fd = try FileDescriptor.open(origin + "/" + name, .writeOnly)
        try fd.closeAfter { try fd.write(all: bytes, at: Int64(offset)) }
        expected.entries[name] = .file(size: Int64(size), sha256: digest)
        let done = try converge("the edited \(name) on every node", timeout: 120 + Double(size) / 5e6, interval: 5,
                                reverifyAfter: 2_000) {
            try receivers.allSatisfy { i in
                let fd = try FileDescriptor.open(root(i) + "/" + name, .readOnly)
                return try fd.closeAfter { try fd.read(upToCount: bytes.count, at: Int64(offset)) } == bytes
            }
        } verify: {
            try receivers.compactMap { i in
                let hash = try FileSystem.hashFile(root(i) + "/" + name, into: SHA256())
                return hash.digest == digest ? nil : "\(name) on \(self.name(i)) has the edit but other content"
            }
        }
        let seconds = Double(done - start) / 1e9
        let received = receivedSince(receivedBefore)
        progress(String(format: "edit in place: %.2f s, ", seconds)
                 + (received.map { "\(NodeStatus.bytes($0)) of file data received" } ?? "bytes received unknown"))
        return (seconds, received)
    }

    /// `count` files of `size` bytes written straight into node 1, folder
    /// after folder (as an unpacked archive would be); returns the seconds
    /// from the first write to all verified on every other node, and the
    /// seconds the writing itself took.
    func smallFiles(count: Int, folders: Int, size: Int) throws -> (seconds: Double, writing: Double) {
        progress("small files: \(count) of \(size) bytes in \(folders) folders")
        let top = "small"
        var perFolder: [String: Int] = [:]
        var wanted = TreeDigest(entries: [top: .directory])
        let start = BenchSupport.now()
        try FileSystem.makeDirectory(origin + "/" + top)
        for f in 0..<count {
            let folder = "\(top)/d" + String(format: "%03d", f * folders / count)
            if perFolder[folder] == nil {
                try FileSystem.makeDirectory(origin + "/" + folder)
                wanted.entries[folder] = .directory
            }
            perFolder[folder, default: 0] += 1
            let path = "\(folder)/f" + String(format: "%05d", f) + ".bin"
            let bytes = BenchFiles.content(seed: 1_000 + UInt64(f), count: size)
            try BenchFiles.write(bytes, to: origin + "/" + path)
            wanted.entries[path] = .file(size: Int64(size), sha256: SHA256.hash(bytes))
        }
        let writing = BenchSupport.seconds(since: start)
        expected.entries.merge(wanted.entries) { $1 }
        let done = try converge("\(count) small files on every node", timeout: 120 + Double(count) * 0.02,
                                interval: 20, reverifyAfter: 1_000) {
            // Listing only: a file appears under its name once installed whole.
            receivers.allSatisfy { i in
                perFolder.allSatisfy { folder, n in (try? FileSystem.listDirectory(root(i) + "/" + folder).count) == n }
            }
        } verify: {
            try receivers.flatMap { i in
                try TreeDigest(root: root(i), subtree: top).differences(from: wanted).map { "\(name(i)): \($0)" }
            }
        }
        let seconds = Double(done - start) / 1e9
        progress(String(format: "small files: %.2f s (writing them took %.2f s)", seconds, writing))
        return (seconds, writing)
    }

    /// Renames node 1's small-files folder; returns the seconds until every
    /// other node shows the new name with every file verified and the old
    /// name gone, and the file bytes the other nodes received meanwhile (0
    /// when they move their own copies).
    func renameSmallFiles() throws -> (seconds: Double, received: UInt64?) {
        let (from, to) = ("small", "small-renamed")
        progress("rename: \(from) -> \(to) in node 1")
        var wanted = TreeDigest(entries: [:])
        var perFolder: [String: Int] = [:]
        for (path, entry) in expected.entries where path == from || path.hasPrefix(from + "/") {
            let moved = to + path.dropFirst(from.count)
            wanted.entries[moved] = entry
            expected.entries[path] = nil
            if case .file = entry, let slash = moved.lastIndex(of: "/") { perFolder[String(moved[..<slash]), default: 0] += 1 }
        }
        let receivedBefore = receivers.map { cluster.status($0)?.bytesReceived }
        let start = BenchSupport.now()
        try FileDescriptor.rename(origin + "/" + from, to: origin + "/" + to)
        expected.entries.merge(wanted.entries) { $1 }
        let done = try converge("the renamed folder on every node", timeout: 120, interval: 20, reverifyAfter: 1_000) {
            receivers.allSatisfy { i in
                !FileDescriptor.exists(root(i) + "/" + from)
                    && perFolder.allSatisfy { folder, n in (try? FileSystem.listDirectory(root(i) + "/" + folder).count) == n }
            }
        } verify: {
            try receivers.flatMap { i in
                try TreeDigest(root: root(i), subtree: to).differences(from: wanted).map { "\(name(i)): \($0)" }
            }
        }
        let seconds = Double(done - start) / 1e9
        let received = receivedSince(receivedBefore)
        progress(String(format: "rename: %.2f s, ", seconds) + (received.map { "\(NodeStatus.bytes($0)) of file data received" } ?? "bytes received unknown"))
        return (seconds, received)
    }

    /// The file bytes every receiver got since `before` (their
    /// `bytesReceived` then), summed; nil if a status could not be read.
    private func receivedSince(_ before: [UInt64?]) -> UInt64? {
        var sum: UInt64 = 0
        for (then, now) in zip(before, receivers.map { cluster.status($0)?.bytesReceived }) {
            guard let then, let now, now >= then else { return nil }
            sum += now - then
        }
        return sum
    }

    /// `count` rewrites of one small file in node 1, one at a time; returns
    /// the latencies (µs) from the start of each write to its content being
    /// present on every other node.
    func edits(count: Int) throws -> Histogram<UInt64> {
        progress("edits: \(count) single edits of a 1 KiB file")
        let folder = "edits"
        let path = folder + "/note.txt"
        try FileSystem.makeDirectory(origin + "/" + folder)
        expected.entries[folder] = .directory
        var latencies = BenchSupport.latencyHistogram()
        for edit in 0...count {
            let bytes = BenchFiles.content(seed: 50_000 + UInt64(edit), count: 1_024)
            let start = BenchSupport.now()
            try BenchFiles.write(bytes, to: origin + "/" + path)
            expected.entries[path] = .file(size: Int64(bytes.count), sha256: SHA256.hash(bytes))
            let arrived = try waitForContent(bytes, at: path, timeout: edit == 0 ? 60 : 30)
            // Edit 0 creates the file: not an edit, not measured.
            if edit > 0 { latencies.record((arrived - start) / 1_000) }
            // A pause, so an edit never lands in the same watcher batch as the one before.
            BenchSupport.sleep(milliseconds: 20)
        }
        progress(String(format: "edits: p50 %.1f ms, p99 %.1f ms", BenchSupport.milliseconds(latencies, percentile: 50),
                        BenchSupport.milliseconds(latencies, percentile: 99)))
        return latencies
    }

    /// Polls every 0.2 ms until every receiver's `path` holds `bytes`;
    /// returns when the last one did.
    private func waitForContent(_ bytes: [UInt8], at path: String, timeout: Double) throws -> UInt64 {
        let deadline = BenchSupport.now() + UInt64(timeout * 1e9)
        var arrived: [Int: UInt64] = [:]
        while arrived.count < receivers.count {
            for i in receivers where arrived[i] == nil {
                if (try? FileDescriptor.readWholeFile(root(i) + "/" + path)) == bytes { arrived[i] = BenchSupport.now() }
            }
            guard BenchSupport.now() < deadline else {
                try cluster.checkAlive(Array(0..<cluster.count))
                let missing = receivers.filter { arrived[$0] == nil }.map(name)
                throw BenchSupport.Failure("\(path) did not reach \(missing.joined(separator: ", ")) within \(Int(timeout)) s")
            }
            BenchSupport.sleep(milliseconds: 0.2)
        }
        return arrived.values.max()!
    }

    /// Every node's whole tree equals what was written into node 1 (waiting
    /// up to a minute for stragglers such as deletions).
    func checkIdentical() throws {
        _ = try converge("identical trees on every node", timeout: 60, interval: 100, reverifyAfter: 500) {
            true
        } verify: {
            try cluster.members.indices.flatMap { i in
                try TreeDigest(root: root(i)).differences(from: expected).map { "\(name(i)): \($0)" }
            }
        }
        progress("all \(cluster.count) trees identical (\(expected.entries.count) paths, verified by SHA-256)")
    }

    /// Polls `present` (cheap) every `interval` ms; when it holds, runs
    /// `verify` (thorough: hashes), and if that finds no problem returns the
    /// moment `present` first held in that pass. A failed verification is
    /// retried after `reverifyAfter` ms, until `timeout` seconds have passed.
    private func converge(_ what: String, timeout: Double, interval: Double, reverifyAfter: Double,
                          present: () throws -> Bool, verify: () throws -> [String]) throws -> UInt64 {
        let deadline = BenchSupport.now() + UInt64(timeout * 1e9)
        var problems: [String] = []
        while true {
            try cluster.checkAlive(Array(0..<cluster.count))
            if try present() {
                let seen = BenchSupport.now()
                problems = try verify()
                if problems.isEmpty { return seen }
                if BenchSupport.now() >= deadline { break }
                BenchSupport.sleep(milliseconds: reverifyAfter)
            } else {
                if BenchSupport.now() >= deadline {
                    problems = (try? verify()) ?? []
                    break
                }
                BenchSupport.sleep(milliseconds: interval)
            }
        }
        throw BenchSupport.Failure("\(what): not reached within \(Int(timeout)) s:\n  "
            + (problems.isEmpty ? "(still incomplete)" : problems.prefix(8).joined(separator: "\n  ")))
    }
}
