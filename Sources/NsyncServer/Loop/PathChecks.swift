#if canImport(Glibc)
import Glibc
#endif

/// Start-up checks on a path, before any state is created. Any thread.
enum PathChecks {
    enum Kind { case missing, directory, other }

    /// What is at `path`, following symlinks (PATH itself may be a link).
    static func kind(of path: String) -> Kind {
        var st = stat()
        guard stat(path, &st) == 0 else { return .missing }
        return (st.st_mode & S_IFMT) == S_IFDIR ? .directory : .other
    }

    /// Whether this process may create files in `path`.
    static func isWritable(_ path: String) -> Bool {
        access(path, W_OK | X_OK) == 0
    }

    /// The absolute form of `path` (symlinks resolved), or nil if it does not exist.
    static func absolute(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static let localHostNames: Set<String> = ["localhost", "127.0.0.1", "::1", "0.0.0.0", "::"]
}
