import ArgumentParser
import Foundation
import NsyncServer

/// `nsyncd status PATH`: asks the running daemon what it is doing.
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a running node's role, leader, peers, transfers, conflicts and errors.",
        discussion: """
        Examples:
          nsyncd status /srv/data
          nsyncd status /srv/data --json | jq .leader
          nsyncd status /srv/data --watch
        """
    )

    @Argument(help: "The synced directory of the node to ask.")
    var path: String

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Flag(help: "Refresh every second until interrupted.")
    var watch = false

    func run() throws {
        repeat {
            let status: NodeStatus
            do {
                status = try ControlClient.status(root: path)
            } catch {
                printError("nsyncd: \(error)")
                throw ExitCode(1)
            }
            if watch { print("\u{1B}[H\u{1B}[2J", terminator: "") }
            if json {
                print(String(decoding: status.jsonData(), as: UTF8.self))
            } else {
                print(status.rendered(), terminator: "")
            }
            if watch {
                fflush(stdout)
                usleep(1_000_000)
            }
        } while watch
    }
}

/// `nsyncd wait PATH`: a barrier for deploy scripts.
struct Wait: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Block until every change this node has seen is held by all reachable members.",
        discussion: """
        Exits 0 once synced; non-zero, listing what is missing, at the timeout.

        Examples:
          cp build/app.tar /srv/data/ && nsyncd wait /srv/data --timeout 60s && deploy
        """
    )

    @Argument(help: "The synced directory of the node to ask.")
    var path: String

    @Option(help: "Give up after this long (e.g. 30s, 2m, 500ms).")
    var timeout: Duration = Duration(argument: "30s")!

    func run() throws {
        let result: WaitResult
        do {
            result = try ControlClient.wait(root: path, timeoutMilliseconds: UInt64(timeout.milliseconds))
        } catch {
            printError("nsyncd: \(error)")
            throw ExitCode(1)
        }
        guard result.ok else {
            printError("nsyncd: not in sync after \(timeout.milliseconds) ms:")
            for line in result.missing { printError("  \(line)") }
            throw ExitCode(3)
        }
    }
}
