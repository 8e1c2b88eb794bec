import Foundation
import XCTest
@testable import NsyncServer

/// A temporary directory for file-system tests, removed in deinit, with
/// small helpers that create files the way a user's programs would.
final class SyncScratchDirectory {
    let path: String

    /// `inMemory` puts it on /dev/shm when there is one: creating 100,000
    /// files on a disk file system that recently deleted as many can take
    /// tens of seconds (ext4 inode reuse checks), which is not what a test measures.
    init(_ label: String = "sync", inMemory: Bool = false) throws {
        var base = NSTemporaryDirectory()
        if inMemory && access("/dev/shm", W_OK) == 0 { base = "/dev/shm/" }
        if !base.hasSuffix("/") { base += "/" }
        let template = base + "nsync-\(label)-XXXXXX"
        var bytes = Array(template.utf8CString)
        guard mkdtemp(&bytes) != nil else { throw SystemError(errno: errno, operation: "mkdtemp", path: template) }
        path = String(cString: bytes)
        // Searchable by everyone: some tests scan as an unprivileged fsuid.
        chmod(path, 0o755)
    }

    deinit {
        // Make everything removable again (tests chmod 000 some directories).
        _ = try? FileManager.default.subpathsOfDirectory(atPath: path).forEach {
            var st = stat()
            if lstat(path + "/" + $0, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR { chmod(path + "/" + $0, 0o755) }
        }
        try? FileManager.default.removeItem(atPath: path)
    }

    func url(_ relative: String) -> String { relative.isEmpty ? path : path + "/" + relative }

    func write(_ relative: String, _ text: String = "", mode: mode_t = 0o644) throws {
        let fd = open(url(relative), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw SystemError(errno: errno, operation: "open", path: url(relative)) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        if !bytes.isEmpty {
            guard Glibc.write(fd, bytes, bytes.count) == bytes.count else {
                throw SystemError(errno: errno, operation: "write", path: url(relative))
            }
        }
    }

    func mkdir(_ relative: String) throws {
        try FileManager.default.createDirectory(atPath: url(relative), withIntermediateDirectories: true)
    }
}

/// Reads an inotify-backed watcher the way the loop will: wait for the fd to
/// be readable (poll(2), bounded by a deadline) or for the listing of an
/// arrived tree to go on, then drain.
func collectEvents(from watcher: Watcher, timeout: Double = 5,
                   until done: ([WatchEvent]) -> Bool) -> [WatchEvent] {
    var events: [WatchEvent] = []
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        var pfd = pollfd(fd: watcher.fd, events: Int16(POLLIN), revents: 0)
        // As the daemon does: drain again at once while an arrived tree is being listed.
        if watcher.hasUnlistedDirectories || poll(&pfd, 1, 50) > 0 { events += watcher.drain() }
        if done(events) { return events }
    }
    return events
}

/// Drains for a short quiet period, for asserting that nothing (more) arrives.
func collectEvents(from watcher: Watcher, quietFor seconds: Double) -> [WatchEvent] {
    collectEvents(from: watcher, timeout: seconds) { _ in false }
}

/// CPU time of the calling thread: a fair measure on a shared machine.
func syncThreadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// A tiny seeded generator so failures replay from the printed seed.
struct SyncTestRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// The seed for a randomized test: NSYNC_TEST_SEED replays one, otherwise a
/// fresh one; printed either way.
func syncTestSeed(_ test: String) -> UInt64 {
    let seed = ProcessInfo.processInfo.environment["NSYNC_TEST_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 0...UInt64.max)
    print("\(test): seed \(seed) (replay with NSYNC_TEST_SEED=\(seed))")
    return seed
}
