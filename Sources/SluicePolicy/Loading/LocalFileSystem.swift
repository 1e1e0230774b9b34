#if canImport(Glibc)
    import Glibc
#endif

/// The real file system, through POSIX calls. Policy files are bounded: one larger than
/// `LocalFileSystem.maxFileBytes` is an error, not an allocation.
public struct LocalFileSystem: PolicyFileSystem {
    /// The largest policy file read: 16 MiB.
    public static let maxFileBytes = 16 << 20

    public init() {}

    public func kind(of path: String) -> PolicyFileKind {
        var info = stat()
        guard stat(path, &info) == 0 else { return errno == ENOENT || errno == ENOTDIR ? .missing : .other }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .regular
        case S_IFDIR: return .directory
        default: return .other
        }
    }

    public func list(_ directory: String) throws(PolicyError) -> [String] {
        guard let handle = opendir(directory) else {
            throw PolicyError(
                path: directory, message: "cannot read the directory: \(String(cString: strerror(errno)))")
        }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public func read(_ path: String) throws(PolicyError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw PolicyError(path: path, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw PolicyError(path: path, message: "cannot read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            bytes += chunk[..<n]
            guard bytes.count <= Self.maxFileBytes else {
                throw PolicyError(path: path, message: "the file is larger than \(Self.maxFileBytes) bytes")
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw PolicyError(path: path, message: "the file is not valid UTF-8")
        }
        return text
    }

    public func canonical(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
