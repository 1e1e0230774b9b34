internal import CSluiceLinux
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// How a child process ended.
public enum Termination: Sendable, Hashable {
    case exited(Int32)
    case signaled(Int32)

    /// The shell convention: the exit code, or 128 + the signal number.
    public var shellStatus: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
    }
}

/// A process started with posix_spawn (never fork in Swift). Descriptors are mapped explicitly and every other
/// descriptor is closed in the child, so nothing leaks into it.
public struct ChildProcess: Sendable, Hashable {
    public let pid: Int32

    /// Starts `path` with `arguments` (argv[0] included) and `environment` (`KEY=VALUE`).
    ///
    /// `environment` is all the child gets, with one exception: the sanitizers' own options (`ASAN_OPTIONS`,
    /// `TSAN_OPTIONS`), when this process has them, are passed on so that every process of a sanitizer build
    /// writes its reports where the run asked (scripts/sanitize.sh). They do nothing to a program built without one.
    ///
    /// - Parameters:
    ///   - descriptors: `(parent, child)` pairs: the child's descriptor `child` becomes a copy of `parent`.
    ///     Descriptors the mapping does not name are closed in the child.
    ///   - newProcessGroup: put the child at the head of its own process group, so a signal can reach it and
    ///     everything it starts.
    public static func spawn(
        path: String,
        arguments: [String],
        environment: [String],
        descriptors: [(parent: FileDescriptor, child: Int32)],
        newProcessGroup: Bool = false,
        workingDirectory: String? = nil
    ) throws(SluiceError) -> ChildProcess {
        let environment = withSanitizerOptions(environment)
        var mappings = descriptors.map { sluice_fd_mapping(parent_fd: $0.parent.rawValue, child_fd: $0.child) }
        let firstClosed = (descriptors.map(\.child).max() ?? 2) + 1
        var pid: pid_t = 0
        let rc = withCStrings(arguments) { argv in
            withCStrings(environment) { envp in
                mappings.withUnsafeMutableBufferPointer { maps in
                    if let workingDirectory {
                        return sluice_spawn(
                            &pid, path, argv, envp, maps.baseAddress, Int32(maps.count), max(3, firstClosed),
                            newProcessGroup ? 1 : 0, workingDirectory)
                    }
                    return sluice_spawn(
                        &pid, path, argv, envp, maps.baseAddress, Int32(maps.count), max(3, firstClosed),
                        newProcessGroup ? 1 : 0, nil)
                }
            }
        }
        guard rc == 0 else { throw SystemCall.error("posix_spawn \(path)", rc) }
        return ChildProcess(pid: pid)
    }

    /// As `spawn`, but the child runs as `user` (groups, then uid), in `workingDirectory` (falling back to `/`).
    /// Needs root; it forks and execs from C, running only async-signal-safe calls in the child.
    public static func spawn(
        path: String,
        arguments: [String],
        environment: [String],
        descriptors: [(parent: FileDescriptor, child: Int32)],
        newProcessGroup: Bool,
        workingDirectory: String?,
        user: UserAccount
    ) throws(SluiceError) -> ChildProcess {
        let environment = withSanitizerOptions(environment)
        let mappings = descriptors.map { sluice_fd_mapping(parent_fd: $0.parent.rawValue, child_fd: $0.child) }
        let firstClosed = max(3, (descriptors.map(\.child).max() ?? 2) + 1)
        var pid: pid_t = 0
        let groups = user.groups.map { gid_t($0) }
        let rc = withCStrings(arguments) { argv in
            withCStrings(environment) { envp in
                mappings.withUnsafeBufferPointer { maps in
                    groups.withUnsafeBufferPointer { groupBuffer in
                        sluice_spawn_user(
                            &pid, path, argv, envp, maps.baseAddress, Int32(maps.count), firstClosed,
                            newProcessGroup ? 1 : 0,
                            workingDirectory, user.uid, user.gid, groupBuffer.baseAddress, Int32(groupBuffer.count))
                    }
                }
            }
        }
        guard rc == 0 else { throw SystemCall.error("spawn \(path) as \(user.name)", rc) }
        return ChildProcess(pid: pid)
    }

    private static let sanitizerOptions: [String] = {
        let names = ["ASAN_OPTIONS", "TSAN_OPTIONS"]
        return names.compactMap { name in getenv(name).map { "\(name)=\(String(cString: $0))" } }
    }()

    private static func withSanitizerOptions(_ environment: [String]) -> [String] {
        environment
            + sanitizerOptions.filter { option in
                let name = option.prefix(while: { $0 != "=" }) + "="
                return !environment.contains { $0.hasPrefix(name) }
            }
    }

    /// A descriptor that becomes readable when the child exits (pidfd_open), for poll and epoll.
    public func exitDescriptor() throws(SluiceError) -> FileDescriptor {
        let fd = sluice_pidfd_open(pid)
        guard fd >= 0 else { throw SystemCall.error("pidfd_open", errno) }
        return FileDescriptor(rawValue: fd)
    }

    /// Sends `signal` to the child's process group (the child must lead one: `newProcessGroup`).
    public func signalGroup(_ signal: Int32) {
        send(signal: signal, toGroup: true)
    }

    /// Waits for the child to end and reaps it.
    public func wait() throws(SluiceError) -> Termination {
        var status: Int32 = 0
        guard sluice_wait(pid, &status, 0) == pid else { throw SystemCall.error("waitpid", errno) }
        return Self.termination(status)
    }

    /// Reaps the child if it has ended, without blocking.
    public func poll() throws(SluiceError) -> Termination? {
        var status: Int32 = 0
        let result = sluice_wait(pid, &status, 1)
        guard result >= 0 else { throw SystemCall.error("waitpid", errno) }
        return result == 0 ? nil : Self.termination(status)
    }

    /// Sends `signal` to the child (or to its whole process group).
    public func send(signal: Int32, toGroup: Bool = false) {
        _ = kill(toGroup ? -pid : pid, signal)
    }

    private static func termination(_ status: Int32) -> Termination {
        sluice_status_signaled(status) != 0
            ? .signaled(sluice_status_signal(status)) : .exited(sluice_status_exit_code(status))
    }
}

/// Calls `body` with a NULL-terminated C array of copies of `strings`, freed afterwards.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
