import Foundation
import XCTest
@testable import NsyncServer

/// One real `nsyncd` process started by a test: the built binary next to the
/// test bundle, its output in a log file beside (never inside) its PATH, and
/// bounded waits on it. Every process is started under `setpriv --pdeathsig
/// KILL`, so a test run that dies cannot leave daemons behind; `stop()` (or
/// the scratch directory's teardown) ends the ones a test forgets.
/// Test thread only.
final class DaemonProcess {
    /// `nsyncd`, built by `swift build --build-tests` next to the test bundle.
    static let executable: String = {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("nsyncd").path
    }()

    let process: Process
    let logPath: String
    let arguments: [String]
    let startedAt = Date()

    /// Starts `setpriv --pdeathsig KILL [wrapper...] nsyncd arguments...` with
    /// stdout and stderr in `logPath`. `wrapper` is more setpriv options
    /// (`--reuid=65534`) and/or a program that ends by exec'ing its arguments
    /// (`unshare -m sh -c '...; exec "$@"' sh`).
    init(arguments: [String], wrapper: [String] = [], logPath: String) throws {
        guard FileManager.default.isExecutableFile(atPath: DaemonProcess.executable) else {
            throw DaemonTestError("no nsyncd binary at \(DaemonProcess.executable): run swift build --build-tests")
        }
        FileManager.default.createFile(atPath: logPath, contents: nil)
        guard let log = FileHandle(forWritingAtPath: logPath) else { throw DaemonTestError("cannot open \(logPath)") }
        defer { try? log.close() }
        self.logPath = logPath
        self.arguments = arguments
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--pdeathsig", "KILL"] + wrapper + [DaemonProcess.executable] + arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func signal(_ number: Int32) {
        if process.isRunning { kill(process.processIdentifier, number) }
    }

    /// The exit status once the process ended, or nil after `timeout` seconds.
    @discardableResult
    func waitForExit(timeout: TimeInterval) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() >= deadline { return nil }
            usleep(10_000)
        }
        return process.terminationStatus
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace` seconds.
    /// Returns the exit status of a clean exit, nil if it had to be killed.
    @discardableResult
    func stop(grace: TimeInterval = 5) -> Int32? {
        guard process.isRunning else { return process.terminationStatus }
        signal(SIGTERM)
        if let status = waitForExit(timeout: grace) { return status }
        signal(SIGKILL)
        waitForExit(timeout: 5)
        return nil
    }

    /// Runs `[wrapper...] nsyncd arguments...` to completion (killed after
    /// `timeout` seconds) and returns how it ended.
    static func runToExit(_ arguments: [String], wrapper: [String] = [], in scratch: DaemonScratch,
                          timeout: TimeInterval = 15) throws -> Exit {
        let logPath = scratch.path + "/run-\(UUID().uuidString.prefix(8)).log"
        let errPath = logPath + ".err"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        FileManager.default.createFile(atPath: errPath, contents: nil)
        let out = FileHandle(forWritingAtPath: logPath)!
        let err = FileHandle(forWritingAtPath: errPath)!
        defer { try? out.close(); try? err.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--pdeathsig", "KILL"] + wrapper + [executable] + arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        let started = Date()
        try process.run()
        let deadline = started.addingTimeInterval(timeout)
        var timedOut = false
        while process.isRunning {
            if Date() >= deadline {
                timedOut = true
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                break
            }
            usleep(5_000)
        }
        return Exit(status: process.terminationStatus, timedOut: timedOut,
                    stdout: (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "",
                    stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "",
                    seconds: Date().timeIntervalSince(started))
    }

    /// How a process that ran to completion ended.
    struct Exit {
        var status: Int32
        /// It was still running at the deadline and was killed.
        var timedOut: Bool
        var stdout: String
        var stderr: String
        var seconds: TimeInterval
        var stderrLines: [Substring] { stderr.split(separator: "\n", omittingEmptySubsequences: true) }
    }
}

/// A failure of the test setup itself (not of the product).
struct DaemonTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A fresh directory for one test (PATHs, logs, certificates), removed with
/// everything in it, after every process started in it is stopped.
final class DaemonScratch {
    let path: String
    private(set) var daemons: [DaemonProcess] = []

    init(_ name: String = #function) throws {
        let clean = name.filter { $0.isLetter || $0.isNumber }.prefix(32)
        path = NSTemporaryDirectory() + "nsync-ops-\(clean)-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// Makes `relative` (and its parents) inside the scratch directory.
    @discardableResult
    func makeDirectory(_ relative: String) throws -> String {
        let full = path + "/" + relative
        try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        return full
    }

    func start(_ arguments: [String], wrapper: [String] = [], log: String) throws -> DaemonProcess {
        let daemon = try DaemonProcess(arguments: arguments, wrapper: wrapper, logPath: path + "/" + log)
        daemons.append(daemon)
        return daemon
    }

    /// Stops every daemon still running (SIGTERM, then SIGKILL) and deletes the directory.
    func remove() {
        for daemon in daemons { daemon.stop(grace: 5) }
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// TCP ports free on this host right now: all are bound (port 0) at once,
/// so they differ, then released for the daemon to take.
enum DaemonPorts {
    static func take(_ count: Int) throws -> [Int] {
        var sockets: [Int32] = []
        defer { for s in sockets { close(s) } }
        var ports: [Int] = []
        for _ in 0..<count {
            let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard s >= 0 else { throw DaemonTestError("socket: errno \(errno)") }
            sockets.append(s)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = 0
            address.sin_addr.s_addr = INADDR_ANY
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw -> Bool in
                    bind(s, raw, length) == 0 && getsockname(s, raw, &length) == 0
                }
            }
            guard bound else { throw DaemonTestError("bind: errno \(errno)") }
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        return ports
    }
}

/// A listening socket on 0.0.0.0:`port` held by the test, to make a port busy.
final class DaemonPortHolder {
    let port: Int
    private var fd: Int32

    init(port: Int) throws {
        self.port = port
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = INADDR_ANY
        let ok = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        } && listen(fd, 4) == 0
        guard ok else {
            close(fd)
            throw DaemonTestError("cannot hold port \(port): errno \(errno)")
        }
    }

    func release() {
        if fd >= 0 { close(fd) }
        fd = -1
    }

    deinit { release() }
}

/// The members of a test cluster: names, ports, PATHs and the command lines
/// that start them. `members` may list nodes that are never started (a
/// configured member that is down), so that a quorum of the started ones
/// still commits. Values only; `start` launches through a DaemonScratch.
struct DaemonCluster {
    /// One node: its name, PATH and ports.
    struct Member {
        var name: String
        var root: String
        var clusterPort: Int
        var filePort: Int
        var entry: String { "\(name)@127.0.0.1:\(clusterPort):\(filePort)" }
    }

    let members: [Member]
    let certificates: TestCertificates

    init(names: [String], certificates: TestCertificates, in scratch: DaemonScratch) throws {
        let ports = try DaemonPorts.take(names.count * 2)
        var members: [Member] = []
        for (i, name) in names.enumerated() {
            members.append(Member(name: name, root: try scratch.makeDirectory(name), clusterPort: ports[2 * i],
                                  filePort: ports[2 * i + 1]))
        }
        self.members = members
        self.certificates = certificates
    }

    func member(_ name: String) -> Member { members.first { $0.name == name }! }

    /// The command line of `name`: every other member in `--cluster`.
    func arguments(_ name: String, extra: [String] = []) -> [String] {
        let me = member(name)
        let others = members.filter { $0.name != name }.map(\.entry).joined(separator: ",")
        return [me.root, "--name", name, "--host", "127.0.0.1", "--cluster-port", "\(me.clusterPort)",
                "--file-server-port", "\(me.filePort)", "--cluster", others,
                "--ca", certificates.caPath, "--cert", certificates.certificatePath(name),
                "--key", certificates.keyPath(name)] + extra
    }

    func start(_ name: String, in scratch: DaemonScratch, wrapper: [String] = [], extra: [String] = []) throws -> DaemonProcess {
        try scratch.start(arguments(name, extra: extra), wrapper: wrapper, log: "\(name).log")
    }
}

/// Asks a running node over its control socket (the same client `nsyncd status` uses).
enum DaemonProbe {
    static func status(_ root: String) -> NodeStatus? {
        try? ControlClient.status(root: root, timeoutMilliseconds: 2_000)
    }

    /// The version `root`'s manifest records for `path` (saved every 2 s and at stop).
    static func manifestVersion(root: String, path: String) -> UInt64? {
        guard let bytes = FileManager.default.contents(atPath: root + "/.nsync/manifest"),
              let manifest = try? Manifest.decode([UInt8](bytes)) else { return nil }
        return manifest[path]?.version
    }
}

/// Bounded waits on real processes. Test thread only.
enum DaemonWait {
    /// Polls `condition` every 50 ms until it holds or `timeout` seconds pass;
    /// fails the test with `what` (and `context()`, e.g. a log) on timeout.
    @discardableResult
    static func until(_ what: String, timeout: TimeInterval, file: StaticString = #filePath, line: UInt = #line,
                      context: () -> String = { "" }, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if try condition() { return true }
            if Date() >= deadline {
                XCTFail("timed out after \(timeout) s waiting for \(what)\n\(context())", file: file, line: line)
                return false
            }
            usleep(50_000)
        }
    }
}

/// What a test wraps nsyncd in to create a condition root cannot otherwise
/// meet: another uid, a private read-only or size-limited mount, a private
/// inotify limit. Each ends by exec'ing nsyncd, so the pid stays the daemon's.
enum DaemonWrapper {
    /// setpriv options: run as nobody:nogroup with no supplementary groups.
    static let nobody = ["--reuid=65534", "--regid=65534", "--clear-groups"]

    /// A private mount namespace in which `path` is bound read-only onto itself.
    static func readOnly(_ path: String) -> [String] {
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         #"mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@""#, path]
    }

    /// A private mount namespace with a tmpfs of `bytes` on `path`; the mount
    /// dies with the daemon, whatever happens to the test. Other processes
    /// reach it through /proc/PID/root.
    static func tmpfs(_ path: String, bytes: Int) -> [String] {
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         #"mount -t tmpfs -o size=\#(bytes),mode=0755 nsync-test "$0" && exec "$@""#, path]
    }

    /// A user namespace (root mapped to root) whose inotify watch limit is `watches`.
    static func inotifyWatches(_ watches: Int) -> [String] {
        ["unshare", "-U", "-r", "sh", "-c", #"echo \#(watches) > /proc/sys/user/max_inotify_watches && exec "$@""#, "sh"]
    }

    static func skipUnlessAvailable(_ wrapper: [String], _ what: String) throws {
        guard isAvailable(wrapper) else {
            throw XCTSkip("\(what) is not possible on this host (setpriv \(wrapper.joined(separator: " ")) fails)")
        }
    }

    /// Whether `wrapper` works on this host (namespaces or root may be denied).
    static func isAvailable(_ wrapper: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = wrapper + ["/bin/true"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}

extension XCTestCase {
    /// Runs nsyncd and checks it refused to start with one line containing every
    /// string of `mentions` (case-insensitive); returns that line.
    @discardableResult
    func assertRefusedToStart(in scratch: DaemonScratch, _ arguments: [String], wrapper: [String] = [], mentions: [String],
                       file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let exit = try DaemonProcess.runToExit(arguments, wrapper: wrapper, in: scratch, timeout: 15)
        let context = "exit \(exit.status) after \(String(format: "%.2f", exit.seconds)) s\nstderr:\n\(exit.stderr)\nstdout:\n\(exit.stdout)"
        XCTAssertFalse(exit.timedOut, "nsyncd kept running instead of refusing to start\n\(context)", file: file, line: line)
        XCTAssertNotEqual(exit.status, 0, "nsyncd exited 0\n\(context)", file: file, line: line)
        XCTAssertEqual(exit.stderrLines.count, 1, "stderr is not exactly one line\n\(context)", file: file, line: line)
        XCTAssertEqual(exit.stdout, "", "stdout is not empty\n\(context)", file: file, line: line)
        let message = String(exit.stderrLines.first ?? "")
        XCTAssertTrue(message.hasPrefix("nsyncd: "), "\(message)", file: file, line: line)
        for mention in mentions {
            XCTAssertTrue(message.lowercased().contains(mention.lowercased()),
                          "the message does not mention '\(mention)': \(message)", file: file, line: line)
        }
        return message
    }
}
