import Foundation
import XCTest

/// Base class for end-to-end tests: `makeCluster()` starts a `TestCluster`
/// and waits for its leader; the teardown stops it whatever happened and,
/// when the test failed, prints every node's log tail first. The test's thread.
class ClusterTestCase: XCTestCase {
    /// Starts `nodes` daemons (or only those in `running`) and waits until
    /// the running ones agree on a leader.
    func makeCluster(nodes: Int = 3, extraArguments: [String] = [], label: String = "e2e",
                     running: [Int]? = nil) throws -> TestCluster {
        let cluster = try TestCluster(nodes: nodes, extraArguments: extraArguments, label: label, running: running)
        let started = Date()
        addTeardownBlock { [weak self] in
            if let run = self?.testRun, run.totalFailureCount > 0 {
                print("==== \(self?.name ?? "test") failed; node logs (tails) ====\n" + cluster.diagnostics(logLines: 60))
            }
            cluster.shutDown()
            print("\(self?.name ?? "test"): cluster ran \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        }
        try cluster.waitForLeader()
        return cluster
    }

    /// Fails (with node diagnostics) unless `condition` holds within `timeout`.
    func eventually(_ cluster: TestCluster, _ what: String, timeout: TimeInterval = 20,
                    _ condition: () throws -> Bool) throws {
        _ = try cluster.poll(what, timeout: timeout) { try condition() ? true : nil }
    }
}
