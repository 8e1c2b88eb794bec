import Foundation
import XCTest
@testable import NsyncServer

/// Folders renamed on every node at once while one follower was stopped,
/// then thousands of files written and edited: the follower's looks at the
/// renamed paths pile up behind one another. Before ddcc43c a look queued
/// for later was re-queued instead of being done by the look already
/// running, and the later queue waited for an empty queue that the edits
/// kept from coming: the follower spun on stat at 60-120% CPU with
/// thousands of announcements stuck and never converged (with that change
/// undone: 3 failures in 3 runs; with it: 3 passes in 3, 40-42 s each).
final class EndToEndLookQueueSpinTests: ClusterTestCase {
    static let folders = 30
    static let filesPerFolder = 50

    func testFoldersRenamedEverywhereWhileAFollowerWasPausedConvergeAndTheFollowerIdles() throws {
        var random = ClusterRandom(seed: ClusterRandom.seed(for: #function))
        let cluster = try makeCluster()
        for d in 0..<Self.folders {
            for f in 0..<Self.filesPerFolder { try cluster.write(0, "churn/\(folder(d, round: 0))/f\(f)", "seed \(d) \(f)\n") }
        }
        try cluster.waitUntilConverged(timeout: 60)

        var follower = 0
        for round in 1...2 {
            let leader = try cluster.waitForLeader()
            follower = (leader + 1) % cluster.count
            let processes = (0..<cluster.count).compactMap { cluster.members[$0].process }
            XCTAssertEqual(processes.count, cluster.count, "round \(round): every node runs")
            // The follower first, so it is still stopped when the others go on.
            cluster.members[follower].process?.signal(SIGSTOP)
            for process in processes { process.signal(SIGSTOP) }
            for node in 0..<cluster.count {
                for d in 0..<Self.folders {
                    try cluster.rename(node, "churn/\(folder(d, round: round - 1))", "churn/\(folder(d, round: round))")
                }
            }
            for (i, process) in processes.enumerated() where i != follower { process.signal(SIGCONT) }
            for n in 0..<2_000 {
                try cluster.write(follower, "churn/\(folder(n % Self.folders, round: round))/new-r\(round)-\(n)", "new \(round) \(n)\n")
            }
            cluster.members[follower].process?.signal(SIGCONT)

            // Edits and deletes everywhere while the follower catches up,
            // spread over about 4 s so its look queue keeps filling.
            for step in 0..<800 {
                let node = Int.random(in: 0..<cluster.count, using: &random)
                if step % 10 == 0 { Thread.sleep(forTimeInterval: 0.05) }
                let path = "churn/\(folder(Int.random(in: 0..<Self.folders, using: &random), round: round))"
                    + "/f\(Int.random(in: 0..<Self.filesPerFolder, using: &random))"
                if Int.random(in: 0..<4, using: &random) == 0 {
                    if FileManager.default.fileExists(atPath: cluster.path(node, path)) { try cluster.remove(node, path) }
                } else {
                    try cluster.write(node, path, "round \(round) step \(step) on \(node)\n")
                }
            }
            let tree = try cluster.waitUntilConverged(timeout: 90)
            let names = tree.paths.filter { $0.hasPrefix("churn/") && !$0.dropFirst(6).contains("/") }
            XCTAssertEqual(names, (0..<Self.folders).map { "churn/\(folder($0, round: round))" },
                           "round \(round): only the folders' new names remain")
            XCTAssertEqual(tree.paths.filter { $0.contains("/new-r\(round)-") }.count, 2_000, "round \(round)")
        }

        // Converged and nothing changing: every daemon idles, the follower above all.
        for node in [follower] + (0..<cluster.count).filter({ $0 != follower }) {
            let pid = try XCTUnwrap(cluster.members[node].process?.pid)
            let share = try cpuShare(pid, over: 3)
            XCTAssertLessThan(share, 0.5, "node\(node + 1) uses \(Int(share * 100))% CPU with nothing to do\n\(cluster.logTail(node))")
        }
    }

    private func folder(_ d: Int, round: Int) -> String {
        round == 0 ? String(format: "d%02d", d) : String(format: "d%02d-r%d", d, round)
    }

    /// CPU time `pid` spent over `seconds` of wall time, as a share of one core.
    private func cpuShare(_ pid: pid_t, over seconds: TimeInterval) throws -> Double {
        let before = try cpuTicks(pid)
        let start = Date()
        Thread.sleep(forTimeInterval: seconds)
        let after = try cpuTicks(pid)
        return Double(after - before) / Double(sysconf(Int32(_SC_CLK_TCK))) / Date().timeIntervalSince(start)
    }

    /// utime + stime from /proc/PID/stat (fields 14 and 15; the name in
    /// parentheses may hold spaces, so count from its closing parenthesis).
    private func cpuTicks(_ pid: pid_t) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        guard let close = stat.lastIndex(of: ")") else { throw ClusterError("/proc/\(pid)/stat: \(stat)") }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Int(fields[11]), let system = Int(fields[12]) else {
            throw ClusterError("/proc/\(pid)/stat: \(stat)")
        }
        return user + system
    }
}
