import Foundation

/// Changing a node's synced directory the way a user's programs would:
/// plain open/write/close, mkdir, symlink, rename, unlink. Parent
/// directories are created as needed. The test's thread.
extension TestCluster {
    /// Writes `bytes` to `relative` on node `node` (truncating), then sets
    /// `mode` with fchmod (so the umask does not strip bits) and, if given,
    /// `mtime` in nanoseconds since the epoch (see the `size:` variant).
    func write(_ node: Int, _ relative: String, _ bytes: [UInt8], mode: mode_t = 0o644, mtime: Int64? = nil) throws {
        try write(node, relative, size: bytes.count, mode: mode, mtime: mtime) { offset, count in
            Array(bytes[offset..<(offset + count)])
        }
    }

    func write(_ node: Int, _ relative: String, _ text: String, mode: mode_t = 0o644, mtime: Int64? = nil) throws {
        try write(node, relative, Array(text.utf8), mode: mode, mtime: mtime)
    }

    /// Writes `size` bytes produced 1 MiB at a time by `piece(offset, count)`,
    /// so large files need not be held in memory.
    ///
    /// Without `mtime`: open, write, fchmod, close, in place. With `mtime`,
    /// the file is written and given its mode and mtime outside the synced
    /// directory, then renamed into place complete, the way rsync installs
    /// a file. Setting the time after the close would be a separate `touch`,
    /// announced as a second version, and even set before the close it is a
    /// touch if the writer pauses longer than the settle time (a file written
    /// without being closed is announced once it stops changing): the trees
    /// would still end with the set mtime, but a test reading one version
    /// could see the write's mtime first, depending on the machine's load.
    func write(_ node: Int, _ relative: String, size: Int, mode: mode_t = 0o644, mtime: Int64? = nil,
               piece: (_ offset: Int, _ count: Int) -> [UInt8]) throws {
        let full = path(node, relative)
        try createParent(of: full)
        let target = mtime == nil ? full : directory + "/staging-\(UUID().uuidString.prefix(8))"
        let fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw fileError("open", target) }
        do {
            defer { close(fd) }
            var offset = 0
            while offset < size {
                let count = min(1 << 20, size - offset)
                let bytes = piece(offset, count)
                precondition(bytes.count == count, "piece(\(offset), \(count)) returned \(bytes.count) bytes")
                var done = 0
                while done < count {
                    let n = bytes[done...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw fileError("write", target)
                    }
                    done += n
                }
                offset += count
            }
            guard fchmod(fd, mode) == 0 else { throw fileError("fchmod", target) }
            if let mtime {
                let time = Self.timespec(nanoseconds: mtime)
                guard futimens(fd, [time, time]) == 0 else { throw fileError("futimens", target) }
            }
        } catch {
            if target != full { unlink(target) }
            throw error
        }
        if target != full {
            guard Glibc.rename(target, full) == 0 else {
                let error = fileError("rename", target)
                unlink(target)
                throw error
            }
        }
    }

    /// The content of `relative` on node `node`, nil if there is no such file.
    /// (open/read, not FileManager: the path's bytes must reach the kernel unchanged.)
    func read(_ node: Int, _ relative: String) -> [UInt8]? {
        let fd = open(path(node, relative), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var content: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { return content }
            content += buffer[0..<n]
        }
    }

    func readText(_ node: Int, _ relative: String) -> String? {
        read(node, relative).map { String(decoding: $0, as: UTF8.self) }
    }

    /// mkdir -p, then chmod `mode` on the last component.
    func makeDirectory(_ node: Int, _ relative: String, mode: mode_t = 0o755) throws {
        let full = path(node, relative)
        try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        guard chmod(full, mode) == 0 else { throw fileError("chmod", full) }
    }

    func makeSymlink(_ node: Int, _ relative: String, target: String) throws {
        let full = path(node, relative)
        try createParent(of: full)
        guard symlink(target, full) == 0 else { throw fileError("symlink", full) }
    }

    func setMode(_ node: Int, _ relative: String, _ mode: mode_t) throws {
        guard chmod(path(node, relative), mode) == 0 else { throw fileError("chmod", path(node, relative)) }
    }

    /// Sets mtime (and atime) to `nanoseconds` since the epoch, not following a symlink.
    func setModificationTime(_ node: Int, _ relative: String, _ nanoseconds: Int64) throws {
        let time = Self.timespec(nanoseconds: nanoseconds)
        var times = [time, time]
        guard utimensat(AT_FDCWD, path(node, relative), &times, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw fileError("utimensat", path(node, relative))
        }
    }

    private static func timespec(nanoseconds: Int64) -> Glibc.timespec {
        Glibc.timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    }

    /// chown -R to the daemons' user when they run as another one (see
    /// `TestCluster.init(unprivileged:)`), as if that user had written it.
    func giveToDaemonUser(_ node: Int, _ relative: String) throws {
        guard let user = daemonUser else { return }
        _ = try TestCertificates.runCommand("chown", ["-R", "\(user.uid):\(user.gid)", path(node, relative)])
    }

    /// rm -rf.
    func remove(_ node: Int, _ relative: String) throws {
        try FileManager.default.removeItem(atPath: path(node, relative))
    }

    func rename(_ node: Int, _ from: String, _ to: String) throws {
        try createParent(of: path(node, to))
        guard Glibc.rename(path(node, from), path(node, to)) == 0 else { throw fileError("rename", path(node, from)) }
    }

    private func createParent(of full: String) throws {
        let parent = (full as NSString).deletingLastPathComponent
        if !FileManager.default.fileExists(atPath: parent) {
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        }
    }

    private func fileError(_ operation: String, _ path: String) -> ClusterError {
        ClusterError("\(operation) \(path): \(String(cString: strerror(errno)))")
    }
}

/// SplitMix64: seeded, so a failing end-to-end test's content can be made
/// again from the seed it printed. Any thread (a value).
struct ClusterRandom: RandomNumberGenerator {
    private(set) var state: UInt64

    init(seed: UInt64) { state = seed }

    /// A seed from NSYNC_E2E_SEED when set (to replay a failure), else fresh; printed either way.
    static func seed(for test: String) -> UInt64 {
        let seed = ProcessInfo.processInfo.environment["NSYNC_E2E_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64.max)
        print("\(test): seed \(seed) (replay with NSYNC_E2E_SEED=\(seed))")
        return seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `count` random bytes, 8 at a time.
    mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { raw in
            var i = 0
            while i + 8 <= count {
                raw.storeBytes(of: next(), toByteOffset: i, as: UInt64.self)
                i += 8
            }
            var last = next()
            while i < count {
                raw[i] = UInt8(truncatingIfNeeded: last)
                last >>= 8
                i += 1
            }
        }
        return out
    }
}

/// What a node keeps in its state directory, for tests that look past the
/// synced tree (crash leftovers). The test's thread.
extension TestCluster {
    /// Files in node `node`'s `.nsync/tmp` (transfers in progress, or left
    /// by a crash) and their sizes, but not the bytes of deleted files it
    /// keeps a while on purpose (`kept-*`, see `keptFiles`); empty when
    /// there is no such directory.
    func temporaryFiles(_ node: Int) -> [String: Int64] {
        let directory = path(node, ".nsync/tmp")
        var files: [String: Int64] = [:]
        for name in (try? ClusterTree.listDirectory(directory)) ?? [] where !name.hasPrefix("kept-") {
            var status = stat()
            if lstat(directory + "/" + name, &status) == 0 { files[name] = Int64(status.st_size) }
        }
        return files
    }

    /// Names of the deleted files' bytes node `node` keeps for renames.
    func keptFiles(_ node: Int) -> [String] {
        ((try? ClusterTree.listDirectory(path(node, ".nsync/tmp"))) ?? []).filter { $0.hasPrefix("kept-") }.sorted()
    }
}
