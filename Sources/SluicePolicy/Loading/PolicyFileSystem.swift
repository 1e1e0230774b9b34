/// What the loader needs from a file system. `LocalFileSystem` is the real one.
public protocol PolicyFileSystem: Sendable {
    func kind(of path: String) -> PolicyFileKind
    /// The names in a directory (not `.` and `..`).
    func list(_ directory: String) throws(PolicyError) -> [String]
    func read(_ path: String) throws(PolicyError) -> String
    /// The path with symlinks, `.` and `..` resolved, to detect include cycles.
    func canonical(_ path: String) -> String
}

public enum PolicyFileKind: Sendable, Hashable {
    /// A regular file, or a symlink to one.
    case regular
    /// A directory, or a symlink to one.
    case directory
    case missing
    /// Anything else: a socket, a device, a dangling link.
    case other
}
