import Foundation
import XCTest

/// Base class for end-to-end tests: `makeCluster()` starts a `TestCluster`
/// and waits for its leader; the teardown stops it whatever happened and,
/// when the test failed, prints every node's log tail first. The test's thread.
class ClusterTestCase: XCTestCase {
    /// Starts `nodes` daemons (or only those in `running`) and waits until
    /// the running ones agree on a leader (none started: no wait). With `peerPorts`, node i dials
    /// peer j at `peerPorts(i, j, ports)` instead of at j's own `ports`
    /// (a `HostileHolder` in its place, say).
    func makeCluster(nodes: Int = 3, extraArguments: [String] = [], label: String = "e2e",
                     running: [Int]? = nil, unprivileged: Bool = false, namesPeers: Bool? = nil,
                     peerPorts: ((_ node: Int, _ peer: Int, _ ports: (cluster: Int, file: Int)) -> (cluster: Int, file: Int))? = nil)
        throws -> TestCluster {
        let cluster = try TestCluster(nodes: nodes, extraArguments: extraArguments, label: label, running: running,
                                      peerPorts: peerPorts, unprivileged: unprivileged, namesPeers: namesPeers)
        shutDownAtTeardown(cluster)
        // Without names in --cluster a new cluster votes once every member was reachable.
        if running?.isEmpty != true, namesPeers != false || running == nil { try cluster.waitForLeader() }
        return cluster
    }

    /// Three daemons dialing one another through a `PartitionProxy` (which
    /// ends by itself after `lifetime` s); the teardown stops both whatever
    /// happened, with the proxy's counters too when the test failed.
    func makePartitionableCluster(extraArguments: [String] = [], label: String,
                                  lifetime: TimeInterval = 600) throws -> (TestCluster, PartitionProxy) {
        let proxy = try PartitionProxy(nodes: 3, lifetime: lifetime)
        addTeardownBlock { proxy.stop() }
        let cluster = try TestCluster(nodes: 3, extraArguments: extraArguments, label: label,
                                      peerPorts: { node, peer, _ in proxy.ports(from: node, to: peer) })
        shutDownAtTeardown(cluster, failureReport: proxy.report)
        try proxy.setTargets(cluster.members.map { ($0.clusterPort, $0.filePort) })
        try cluster.waitForLeader()
        return (cluster, proxy)
    }

    /// Stops `cluster` at the end of the test, printing every node's log
    /// tail (and `failureReport`) first when the test failed.
    private func shutDownAtTeardown(_ cluster: TestCluster, failureReport: (() -> String)? = nil) {
        let started = Date()
        addTeardownBlock { [weak self] in
            if let run = self?.testRun, run.totalFailureCount > 0 {
                print("==== \(self?.name ?? "test") failed; node logs (tails) ====\n" + cluster.diagnostics(logLines: 60)
                      + (failureReport.map { "\n" + $0() } ?? ""))
            }
            cluster.shutDown()
            print("\(self?.name ?? "test"): cluster ran \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        }
    }

    /// Fails (with node diagnostics) unless `condition` holds within `timeout`.
    func eventually(_ cluster: TestCluster, _ what: String, timeout: TimeInterval = 20,
                    _ condition: () throws -> Bool) throws {
        _ = try cluster.poll(what, timeout: timeout) { try condition() ? true : nil }
    }
}
