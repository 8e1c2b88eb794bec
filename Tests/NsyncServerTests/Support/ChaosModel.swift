import Foundation
@testable import NsyncServer

/// Every content the chaos test wrote, keyed by its SHA-256, and what may
/// legitimately have become of it: the test's own record of which bytes must
/// still exist somewhere in the converged tree (under their name, at a name
/// they were renamed to, or in a conflict copy). A plain value; the test's
/// thread.
///
/// The rule is built from what the test saw, not from what it did: a
/// content may vanish only if the test replaced or removed it on a node
/// whose disk held it at that moment (read while that node's daemon was
/// stopped, so the daemon could not change the file between the look and
/// the change). That covers an overwrite, delete, append or truncate by the
/// writer itself, and by another node after it received the content; a
/// change on a node that had not received it yet is a concurrent edit, and
/// both sides must survive (README, "Conflicts": the loser is kept as a copy,
/// an edit racing a delete wins). Each content also carries a unique token
/// (`r17-n2-<hex>`), so no two writes share bytes and the README's caveat
/// about identical bytes ("a file moved onto a name whose current version
/// has the same bytes counts as that version") never merges two of them.
struct ChaosModel {
    /// One content the test wrote (a write, an append's result, a large file).
    struct Content {
        let token: String
        let node: Int
        let round: Int
        let size: Int
        /// Why it need not survive; nil while it must.
        var excuse: String?
        /// When the test last wrote or moved it on each node (for kill -9).
        var lastLocalChange: [Int: Date] = [:]
        /// Where it went, for the failure message: "r12 node2 wrote f0.txt".
        var history: [String] = []
        /// Every path it had, for picking daemon log lines about it.
        var paths: [String] = []
    }

    private(set) var contents: [String: Content] = [:]

    /// Excused contents that must survive no more, by reason kind, for the summary.
    private(set) var excusedCounts: [String: Int] = [:]

    var count: Int { contents.count }

    /// A new content `hash` (hex SHA-256) written to `path` on `node`.
    mutating func wrote(_ hash: String, token: String, node: Int, round: Int, path: String, size: Int, at time: Date) {
        precondition(contents[hash] == nil, "two writes produced the same bytes (\(token)): tokens must make them unique")
        var content = Content(token: token, node: node, round: round, size: size)
        content.lastLocalChange[node] = time
        content.history.append("r\(round) node\(node + 1) wrote \(path) (\(size) B)")
        content.paths.append(path)
        contents[hash] = content
    }

    /// The test replaced or removed these contents on `node`, whose disk held
    /// them (at `path` or below it): they may be gone everywhere now.
    /// Unknown hashes (an empty file) are ignored.
    mutating func destroyed(_ hashes: [String], node: Int, round: Int, how: String, path: String) {
        for hash in hashes where contents[hash] != nil {
            contents[hash]!.history.append("r\(round) node\(node + 1) \(how) \(path), which held it")
            excuse(hash, kind: "replaced or removed where seen", "r\(round): node\(node + 1) \(how) \(path) while holding it")
        }
    }

    /// The test renamed `from` to `to` on `node`, moving these contents (a
    /// file, or everything below a directory); a content moved needs to
    /// survive at its new name, which the final check finds by content.
    mutating func moved(_ hashes: [(hash: String, from: String, to: String)], node: Int, round: Int, at time: Date) {
        for (hash, from, to) in hashes where contents[hash] != nil {
            contents[hash]!.lastLocalChange[node] = time
            contents[hash]!.history.append("r\(round) node\(node + 1) moved \(from) -> \(to)")
            contents[hash]!.paths.append(to)
        }
    }

    /// `node` was killed with SIGKILL at `time`: contents the test wrote or
    /// moved there within `window` before are excused.
    ///
    /// Excluded because the daemon may not have seen them: an inotify event
    /// still queued in the kernel, a hash in progress, or an announcement not
    /// yet committed, and a manifest saved only about once a second. The
    /// restart's scan should find them (and a loss would be a bug), but what
    /// a crash may cost in its last moments is not what this test asserts;
    /// the summary prints how many of these were lost anyway.
    mutating func killed(_ node: Int, round: Int, at time: Date, window: TimeInterval) {
        for (hash, content) in contents where content.excuse == nil {
            guard let changed = content.lastLocalChange[node], time.timeIntervalSince(changed) < window else { continue }
            let age = String(format: "%.2f", time.timeIntervalSince(changed))
            contents[hash]!.history.append("r\(round) node\(node + 1) killed -9 \(age) s after the test wrote or moved it there")
            excuse(hash, kind: "written or moved just before a kill -9", "r\(round): node\(node + 1) killed -9 \(age) s after it was written or moved there")
        }
    }

    private mutating func excuse(_ hash: String, kind: String, _ reason: String) {
        guard contents[hash]!.excuse == nil else { return }
        contents[hash]!.excuse = reason
        excusedCounts[kind, default: 0] += 1
    }

    /// What the final tree tells about the model.
    struct Verdict {
        /// Contents that had to survive and are in no file of the tree.
        var lost: [Content] = []
        /// Excused contents that are gone (legitimately, or not: for the summary).
        var excusedGone: [Content] = []
        var mustSurvive = 0
        var survived = 0
        /// Of those, how many survived only in a conflict copy (or inside a directory's copy).
        var onlyInConflictCopies = 0
        /// Files whose non-empty bytes the test never wrote: torn or mixed installs.
        var unknown: [String] = []
    }

    /// Checks the converged tree: every content with no excuse is the
    /// content of some file in it, and every non-empty file holds bytes the
    /// test wrote.
    func verdict(for tree: ClusterTree) -> Verdict {
        var present: [String: [String]] = [:]
        var verdict = Verdict()
        for path in tree.paths {
            guard let entry = tree[path], entry.kind == .file else { continue }
            present[entry.hash, default: []].append(path)
            if entry.size > 0 && contents[entry.hash] == nil { verdict.unknown.append(path) }
        }
        for (hash, content) in contents.sorted(by: { ($0.value.round, $0.value.token) < ($1.value.round, $1.value.token) }) {
            if content.excuse == nil {
                verdict.mustSurvive += 1
                guard let paths = present[hash] else {
                    verdict.lost.append(content)
                    continue
                }
                verdict.survived += 1
                let inCopy = { (path: String) in path.split(separator: "/").contains { ConflictName.isConflictCopy(String($0)) } }
                if paths.allSatisfy(inCopy) { verdict.onlyInConflictCopies += 1 }
            } else if present[hash] == nil {
                verdict.excusedGone.append(content)
            }
        }
        return verdict
    }
}
