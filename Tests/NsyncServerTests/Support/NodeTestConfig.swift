import Foundation
@testable import NsyncServer

extension NodeConfig {
    /// node1 of a three-node cluster on loopback (free ports, the shared
    /// test certificates) with PATH `root`: for a `Node` run in-process,
    /// whose peers need not be running.
    static func node1OfThree(root: String) throws -> NodeConfig {
        let certificates = TestCertificates.shared
        let ports = try TestCluster.freePorts(6)
        return NodeConfig(
            root: root, name: "node1", listenHost: "127.0.0.1", clusterPort: ports[0], filePort: ports[1],
            peers: [PeerAddress(name: "node2", host: "127.0.0.1", clusterPort: ports[2], filePort: ports[3]),
                    PeerAddress(name: "node3", host: "127.0.0.1", clusterPort: ports[4], filePort: ports[5])],
            caPath: certificates.caPath, certificatePath: certificates.certificatePath("node1"),
            keyPath: certificates.keyPath("node1"))
    }
}
