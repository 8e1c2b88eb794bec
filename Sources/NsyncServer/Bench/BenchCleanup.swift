import Foundation

/// What a benchmark must undo if it is interrupted (Ctrl-C, SIGTERM) rather
/// than failing normally (its `defer`s do that): the daemons it spawned and
/// the scratch directories it made. The benchmark thread registers and
/// unregisters; a Dispatch signal source reads the lists. Guarded by a lock.
public enum BenchCleanup {
    private static let lock = NSLock()
    private static var processes: [Int32: Process] = [:]
    private static var directories: Set<String> = []
    private static var sources: [DispatchSourceSignal] = []

    /// From now on SIGINT and SIGTERM kill every registered daemon, remove
    /// every registered directory and exit with 130. For the `nsyncd bench`
    /// command, not for tests (XCTest handles its own signals).
    public static func installInterruptHandler() {
        lock.lock()
        defer { lock.unlock() }
        guard sources.isEmpty else { return }
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { cleanUpAndExit() }
            source.resume()
            sources.append(source)
        }
    }

    static func register(_ process: Process) {
        lock.lock()
        processes[process.processIdentifier] = process
        lock.unlock()
    }

    static func unregister(_ process: Process) {
        lock.lock()
        processes[process.processIdentifier] = nil
        lock.unlock()
    }

    static func register(directory: String) {
        lock.lock()
        directories.insert(directory)
        lock.unlock()
    }

    static func unregister(directory: String) {
        lock.lock()
        directories.remove(directory)
        lock.unlock()
    }

    private static func cleanUpAndExit() {
        lock.lock()
        let running = Array(processes.values)
        let scratch = directories
        lock.unlock()
        // SIGKILL, not SIGTERM: an interrupted benchmark's daemons have
        // nothing to save, and their directories are about to go.
        for process in running where process.isRunning { kill(process.processIdentifier, SIGKILL) }
        for process in running { process.waitUntilExit() }
        // The benchmark thread may still be writing into a tree: go again
        // until its writes fail for want of a parent directory.
        for directory in scratch {
            for _ in 0..<10 where FileManager.default.fileExists(atPath: directory) {
                try? FileManager.default.removeItem(atPath: directory)
            }
        }
        FileHandle.standardError.write(Data("nsyncd bench: interrupted; daemons killed, scratch directories removed\n".utf8))
        exit(130)
    }
}
