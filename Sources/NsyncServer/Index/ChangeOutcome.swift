/// What applying one `IndexChange` did. Every node computes the same outcome
/// for the same entry; the proposer acts on its own (a rejected put becomes a
/// conflict copy). A plain value.
public enum ChangeOutcome: Equatable, Sendable {
    /// The change took effect; `version` is the path's version now (for a put:
    /// the entry's index; for hold/forget: the version named).
    case accepted(version: UInt64)
    /// The index already had this content (or this deletion): nothing new was
    /// committed; the proposer was added to the holders. `version` is the
    /// current version, 0 when the path is absent.
    case alreadyCurrent(version: UInt64)
    /// A concurrent change won; `current` is the winner. The proposer keeps its
    /// bytes as a conflict copy (or, for a deletion, restores the winner).
    case rejected(current: FileRecord)
    /// A hold or forget named a version that is no longer current.
    case stale
    /// The change breaks a rule (path, mode, hash...); nothing changed.
    case invalid(reason: String)
}
