/// Directories and symlinks installed after the last manifest save: the
/// install journal covers only files. Loop thread only.
///
/// Why: the manifest is saved about once a second. A folder this node made
/// for the cluster in the second before a kill -9 is then unknown to it at
/// start-up; once the node has caught up with a deletion of that folder
/// (renamed or removed elsewhere while it was down), a look finds a
/// directory it knows nothing of on a deleted name, takes it for the
/// user's new one, and announces it: the folder comes back on every node.
/// The index as replayed at start-up (before any entry from the others)
/// says what the tree held when the node stopped; a directory or link
/// there now with that very content (kind, mode, target) is that record's,
/// and the manifest takes it at that version. Not only those this node
/// announced holding: a kill within milliseconds of the install comes
/// before its hold commits (seen in 2 of 8 rounds). A directory the user
/// made on a name the cluster had is that directory for the index too (two
/// directories under one name merge, never conflict); a link to the same
/// target is the record's as a file with the same bytes is (`observed`).
/// The deletion that followed then removes it like any other, and a file
/// the user put in it meanwhile is announced and brings it back.
extension Reconciler {
    /// The directory and symlink records of `index` whose version the
    /// manifest is older than: each may be on disk unknown.
    public func unsavedInstallCandidates(in index: FileIndex) -> [FileRecord] {
        index.filter { record in
            guard record.kind == .directory || record.kind == .symlink else { return false }
            guard let entry = manifest[record.path] else { return true }
            // Version 0 with something on disk is a rejected change of the
            // user's: theirs, never to be taken for an install.
            return entry.version < record.version && (entry.version > 0 || entry.local == nil)
        }
    }

    /// `found` is what the disk has at `record.path` (a candidate from
    /// `unsavedInstallCandidates`, before any newer entry was applied). If
    /// it is what installing `record` leaves (same kind, mode and target),
    /// the manifest takes it at the record's version. Returns whether it did.
    @discardableResult
    public mutating func adoptUnsavedInstall(_ record: FileRecord, found: LocalFile?) -> Bool {
        guard let found, record.kind == .directory || record.kind == .symlink, found.sameContent(as: record) else {
            return false
        }
        if let entry = manifest[record.path], entry.version >= record.version || (entry.version == 0 && entry.local != nil) {
            return false
        }
        knownInstalled(record.path, ManifestEntry(version: record.version, local: found))
        return true
    }
}
