import Foundation

/// One child process started with posix_spawn, its output appended to a log
/// file, reaped with waitpid. Used by `TestCluster` on the test's thread.
///
/// Not Foundation's `Process`: the harness needs signals of its choice, a
/// non-blocking "has it exited?" and the exit status, and no helper threads.
/// The child gets default signal dispositions and an empty signal mask (what
/// a shell would give it), not whatever the XCTest runner ignores or blocks.
final class ClusterProcess {
    let pid: pid_t
    let description: String
    /// Set once waitpid has reaped the child.
    private(set) var exitStatus: Int32?

    /// Where `setpriv` is, when it can give the child a parent-death signal:
    /// a test process that crashes (and so never runs its teardown) then
    /// takes its daemons with it instead of leaving them running.
    private static let setpriv: String? = {
        let path = "/usr/bin/setpriv"
        guard FileManager.default.isExecutableFile(atPath: path),
              let help = try? TestCertificates.runCommand(path, ["--help"]), help.contains("--pdeathsig") else { return nil }
        return path
    }()

    /// Starts `executable arguments`, stdin from /dev/null, stdout and stderr
    /// appended to `logPath`. With `dieWithParent`, the child is killed when
    /// the thread that started it exits (setpriv --pdeathsig; the XCTest main
    /// thread lives as long as the test process). With `user`, it runs as
    /// that user and group, without supplementary groups (setpriv: the test
    /// process must be root).
    init(_ executable: String, _ arguments: [String], logPath: String, dieWithParent: Bool = true,
         user: (uid: uid_t, gid: gid_t)? = nil) throws {
        var program = executable
        var argv = [executable] + arguments
        var options: [String] = []
        if let user { options += ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--clear-groups"] }
        if dieWithParent { options += ["--pdeathsig", "KILL"] }
        if !options.isEmpty, let setpriv = Self.setpriv {
            program = setpriv
            argv = [setpriv] + options + ["--"] + argv
        } else if user != nil {
            throw ClusterError("running \(executable) as another user needs setpriv (util-linux) at /usr/bin/setpriv")
        }
        description = ([executable] + arguments).joined(separator: " ")

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let cArguments = argv.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var child: pid_t = 0
        let result = posix_spawn(&child, program, &actions, &attributes, cArguments, environ)
        guard result == 0 else {
            throw ClusterError("cannot start \(program): \(String(cString: strerror(result)))")
        }
        pid = child
    }

    /// Reaps the child if it has exited; true while it runs.
    var isRunning: Bool {
        guard exitStatus == nil else { return false }
        var status: Int32 = 0
        let reaped = waitpid(pid, &status, WNOHANG)
        if reaped == pid {
            exitStatus = status
            return false
        }
        // ECHILD: someone else reaped it; it is gone all the same.
        if reaped < 0 && errno == ECHILD {
            exitStatus = -1
            return false
        }
        return true
    }

    /// "exited 2", "killed by signal 9": for failure messages.
    var exitDescription: String {
        guard let status = exitStatus else { return "running" }
        if status == -1 { return "gone (reaped elsewhere)" }
        let signal = status & 0x7f
        if signal == 0 { return "exited \((status >> 8) & 0xff)" }
        return "killed by signal \(signal)"
    }

    /// True when it exited by itself with status 0 (SIGTERM's clean stop).
    var exitedCleanly: Bool {
        guard let status = exitStatus else { return false }
        return status & 0x7f == 0 && (status >> 8) & 0xff == 0
    }

    func signal(_ number: Int32) {
        if isRunning { Glibc.kill(pid, number) }
    }

    /// Polls until the child exited; false at the deadline.
    @discardableResult
    func waitForExit(timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning {
            if Date() >= deadline { return false }
            usleep(5_000)
        }
        return true
    }

    /// SIGTERM, then SIGKILL if it has not stopped within `grace`; always reaps.
    func stop(grace: TimeInterval = 5) {
        signal(SIGTERM)
        if !waitForExit(timeout: grace) {
            signal(SIGKILL)
            waitForExit(timeout: 10)
        }
    }

    deinit {
        if isRunning {
            Glibc.kill(pid, SIGKILL)
            waitForExit(timeout: 10)
        }
    }
}

/// A harness failure with everything a reader needs to see why (differences,
/// node states, log tails). Thrown out of tests, XCTest prints it.
struct ClusterError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
