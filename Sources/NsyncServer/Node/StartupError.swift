/// Why a node refused to start; each description is one line naming the
/// problem and how to fix it (the CLI prints it and exits non-zero).
public enum StartupError: Error, Equatable, CustomStringConvertible {
    case pathMissing(String)
    case notADirectory(String)
    case notWritable(String)
    case malformedClusterEntry(String, String)
    case ownNameInCluster(String)
    case duplicatePeer(String)
    case invalidName(String)
    case portInUse(Int)
    case cannotListen(Int, String)
    case tls(String)
    case alreadyRunning(String)
    /// inotify_init1 or the watch on PATH itself failed for lack of
    /// inotify instances or watches: `setting` is the sysctl to raise.
    case watchLimitTooLow(path: String, setting: String, current: Int?)
    /// The certificate does not carry --name, so every peer would refuse our Hello.
    case nameNotInCertificate(name: String, certificate: String, names: String)
    /// --peer-timeout outside 2...3600 s (keepalives go every second).
    case invalidPeerTimeout(Double)
    case invalidRescanInterval(Double)
    case state(String)

    public var description: String {
        switch self {
        case .pathMissing(let p):
            "PATH \(p) does not exist: create it (mkdir -p \(p)) or name an existing directory"
        case .notADirectory(let p):
            "PATH \(p) is not a directory: name the directory to sync"
        case .notWritable(let p):
            "PATH \(p) is not writable by this user: fix its permissions or run nsyncd as its owner"
        case let .malformedClusterEntry(entry, why):
            "--cluster entry '\(entry)' is malformed: \(why) (example: --cluster host2:10002:8002,host3:10003:8003)"
        case .ownNameInCluster(let entry):
            "--cluster entry '\(entry)' names this node itself: list only the other nodes"
        case .duplicatePeer(let entry):
            "--cluster lists '\(entry)' twice: list each other node once"
        case .invalidName(let n):
            "--name '\(n)' is not a valid node name: use 1-64 letters, digits, '.', '_' or '-'"
        case .portInUse(let port):
            "port \(port) is already in use: stop what listens there or choose another port"
        case let .cannotListen(port, why):
            "cannot listen on port \(port): \(why)"
        case .tls(let why):
            why
        case .alreadyRunning(let p):
            "another nsyncd is already running on \(p) (lock \(p)/.nsync/lock): stop it first"
        case let .watchLimitTooLow(path, setting, current):
            "cannot watch \(path): the inotify limit \(setting) (now \(current.map(String.init) ?? "unknown")) is used up: raise it, e.g. sysctl -w \(setting)=\(setting.hasSuffix("watches") ? 524288 : 1024) (persist it in /etc/sysctl.d/)"
        case let .nameNotInCertificate(name, certificate, names):
            "--name '\(name)' is not a name in certificate \(certificate) (it names \(names)), so peers would refuse this node: pass the --name it was made for, or make one with certs/gen-certs.sh --out DIR \(name)"
        case .invalidPeerTimeout(let seconds):
            "--peer-timeout \(seconds) is out of range: give 2 to 3600 seconds (keepalives go every second; the default is \(Channel.defaultSilenceLimit / 1000))"
        case .invalidRescanInterval(let seconds):
            "--rescan-interval \(seconds) is out of range: give 0 (never) or 1 to 604800 seconds (the default is \(NodeConfig.Tuning().rescanInterval / 1000))"
        case .state(let why):
            why
        }
    }
}
