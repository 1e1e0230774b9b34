public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// What a service name resolves to.
public enum ServiceEntry: Sendable, Hashable {
    /// An executable file (or a symlink to one).
    case executable(path: String)
    /// A UNIX stream socket of a long-running service (or a symlink to one).
    case socket(path: String)

    public var path: String {
        switch self {
        case .executable(let path), .socket(let path): path
        }
    }
}

/// Finds services and their configuration, as qrexec's agent does.
///
/// Lookup tries `SERVICE+ARG` in every service directory, then `SERVICE` in every directory; the `+` is always
/// there, so a file named `SERVICE+` handles calls with an empty argument before the generic `SERVICE`. The first
/// entry that exists decides: a dangling symlink is skipped, any other problem ends the call with 125. Nothing found
/// ends it with 127.
public struct ServiceRegistry: Sendable {
    public var serviceDirectories: [String]
    public var configDirectories: [String]

    /// The runtime, local-admin and system directories, in lookup order.
    public static let defaultServiceDirectories = [
        "/run/sluice/services", "/usr/local/etc/sluice/services", "/etc/sluice/services",
    ]
    public static let defaultConfigDirectories = [
        "/run/sluice/rpc-config", "/usr/local/etc/sluice/rpc-config", "/etc/sluice/rpc-config",
    ]
    /// The largest configuration file read.
    public static let maxConfigBytes = 65_536

    /// Relative directories are made absolute against the current directory: a handler starts in its user's home,
    /// where a relative path would mean something else.
    public init(
        serviceDirectories: [String] = defaultServiceDirectories, configDirectories: [String] = defaultConfigDirectories
    ) {
        self.serviceDirectories = serviceDirectories.map(Self.absolute)
        self.configDirectories = configDirectories.map(Self.absolute)
    }

    static func absolute(_ path: String) -> String {
        guard !path.hasPrefix("/"), let cwd = getcwd(nil, 0) else { return path }
        defer { free(cwd) }
        return String(cString: cwd) + "/" + path
    }

    /// The names tried, in order: `SERVICE+ARG` (when it fits a file name), then `SERVICE`.
    static func candidateNames(_ call: ServiceCall) -> [String] {
        let full = call.fullName
        return full.utf8.count <= Int(NAME_MAX) ? [full, call.service.rawValue] : [call.service.rawValue]
    }

    public func lookup(_ call: ServiceCall) throws(SluiceError) -> ServiceEntry {
        for name in Self.candidateNames(call) {
            for directory in serviceDirectories {
                let path = directory + "/" + name
                var link = stat()
                guard lstat(path, &link) == 0 else {
                    if errno == ENOENT || errno == ENOTDIR { continue }
                    throw SluiceError(.serviceUnusable, "\(path): \(String(cString: strerror(errno)))")
                }
                var info = stat()
                guard stat(path, &info) == 0 else {
                    if errno == ENOENT { continue }  // a dangling symlink: keep looking
                    throw SluiceError(.serviceUnusable, "\(path): \(String(cString: strerror(errno)))")
                }
                switch info.st_mode & S_IFMT {
                case S_IFSOCK:
                    return .socket(path: path)
                case S_IFREG where access(path, X_OK) == 0:
                    return .executable(path: path)
                default:
                    throw SluiceError(.serviceUnusable, "\(path) is neither an executable file nor a UNIX socket")
                }
            }
        }
        throw SluiceError(.serviceNotFound, "service \(call.fullName) not found")
    }

    /// The configuration for `call`: the first of `SERVICE+ARG`, then `SERVICE`, across the configuration
    /// directories; the defaults when there is none.
    public func configuration(for call: ServiceCall) throws(SluiceError) -> ServiceConfiguration {
        for name in Self.candidateNames(call) {
            for directory in configDirectories {
                let path = directory + "/" + name
                guard let text = try Self.readIfPresent(path) else { continue }
                return try ServiceConfiguration(parsing: text, file: path)
            }
        }
        return ServiceConfiguration()
    }

    static func readIfPresent(_ path: String) throws(SluiceError) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw SluiceError(.serviceConfigInvalid, "\(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: maxConfigBytes + 1)
        var total = 0
        while total < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else {
                throw SluiceError(.serviceConfigInvalid, "\(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            total += n
        }
        guard total <= maxConfigBytes else {
            throw SluiceError(.serviceConfigInvalid, "\(path): larger than \(maxConfigBytes) bytes")
        }
        guard let text = String(validating: bytes[..<total], as: UTF8.self) else {
            throw SluiceError(.serviceConfigInvalid, "\(path): not valid UTF-8")
        }
        return text
    }
}
