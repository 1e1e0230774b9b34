internal import CSluiceLinux
public import Logging
import SluiceSystem
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// Starts handlers the way qrexec's agent does, so existing service scripts run unchanged.
///
/// - argv: the service file, then the argument as its own element when it is not empty (never through a shell);
/// - environment: a clean one with `PATH`, `HOME`, `USER`, `LOGNAME`, `SHELL`, qrexec's `QREXEC_REMOTE_DOMAIN`,
///   `QREXEC_SERVICE_FULL_NAME`, `QREXEC_SERVICE_ARGUMENT`, `QREXEC_REQUESTED_TARGET_TYPE` (empty outside the admin
///   domain; `name` or `keyword` in it, with `QREXEC_REQUESTED_TARGET` or `QREXEC_REQUESTED_TARGET_KEYWORD`) and
///   `QREXEC_AGENT_PID`, and Sluice's `SLUICE_*` beside them;
/// - user: the service's `force-user`, else the call's `user=`, else the agent's default user, when the agent runs
///   as root; otherwise the agent's own user. The working directory is that user's home (for the agent's own user,
///   the agent's `HOME`: `sluice-host` gives each domain's agent one);
/// - descriptors: stdin, stdout and stderr are pipes to this side; nothing else is inherited;
/// - the handler leads its own process group, so a deadline or a cancellation reaches everything it started.
public final class HandlerLauncher: Sendable {
    public let registry: ServiceRegistry
    public let limiter: ConcurrencyLimiter
    /// The user handlers run as when neither the policy nor the service names one (and the agent is root).
    public let defaultUser: String?
    private let logger: Logger
    /// Added to every handler's environment: the agent sets `SLUICE_DOMAIN` (its domain's name) and
    /// `SLUICE_AGENT_SOCKET` (so a handler can call onwards with `sluice-call`).
    public let extraEnvironment: [String]
    /// The agent's own account, looked up once (the group database read is not free).
    private let ownAccount: UserAccount?

    /// Pipe capacity for handler streams: larger pipes mean fewer wake-ups on bulk transfers.
    public static let pipeCapacity = 1 << 20

    public init(
        registry: ServiceRegistry, limiter: ConcurrencyLimiter = ConcurrencyLimiter(), defaultUser: String? = nil,
        extraEnvironment: [String] = [], logger: Logger
    ) {
        self.extraEnvironment = extraEnvironment
        self.registry = registry
        self.limiter = limiter
        self.defaultUser = defaultUser
        self.logger = logger
        // Handlers that run as the agent's own user get the agent's home: `sluice-host` gives each domain's agent
        // one of its own (its system user's passwd entry has none).
        ownAccount = UserAccount.current().map { account in
            var account = account
            if let home = getenv("HOME") { account.home = String(cString: home) }
            return account
        }
    }

    /// Finds and starts the handler for `context`. Errors: `service-not-found` (the caller exits 127),
    /// `service-unusable`, `service-config-invalid`, `unknown-user`, `system-call-failed` (125), `service-busy`.
    public func start(_ context: CallContext) throws(SluiceError) -> RunningHandler {
        let entry = try registry.lookup(context.call)
        let configuration = try registry.configuration(for: context.call)
        let permit = try limiter.acquire(context.call.service.rawValue, limit: configuration.maxConcurrent)
        var timeouts: [UInt64] = []
        if let seconds = configuration.timeoutSeconds { timeouts.append(UInt64(seconds) * 1_000_000_000) }
        if let milliseconds = context.timeoutMilliseconds { timeouts.append(UInt64(milliseconds) * 1_000_000) }
        let deadline = timeouts.min().map { MonotonicClock.nanoseconds + $0 }
        switch entry {
        case .socket(let path):
            let socket = try UnixSocket.connect(to: path, kind: .stream)
            if !configuration.skipServiceDescriptor {
                do {
                    try socket.writeAll(context.serviceDescriptor)
                } catch {
                    socket.close()
                    throw error
                }
            }
            let reader = FileDescriptor(rawValue: dup(socket.rawValue))
            try UnixSocket.setNonBlocking(socket)
            return RunningHandler(
                kind: .socket, entry: entry, configuration: configuration, input: socket, output: reader,
                errorOutput: nil,
                exitDescriptor: nil, deadline: deadline, permit: permit)
        case .executable(let path):
            return try startProcess(
                path: path, context: context, configuration: configuration, entry: entry, deadline: deadline,
                permit: permit)
        }
    }

    private func startProcess(
        path: String, context: CallContext, configuration: ServiceConfiguration, entry: ServiceEntry, deadline: UInt64?,
        permit: ConcurrencyLimiter.Permit
    ) throws(SluiceError) -> RunningHandler {
        let wanted = configuration.forceUser ?? context.user?.rawValue ?? defaultUser
        var account: UserAccount?
        if UserAccount.canSwitchUsers, let wanted, wanted != ownAccount?.name {
            account = try UserAccount.lookup(wanted)
        } else {
            account = ownAccount
        }
        let stdin = try Pipe()
        let stdout: Pipe
        let stderr: Pipe
        do {
            stdout = try Pipe()
            stderr = try Pipe()
        } catch {
            stdin.readEnd.close()
            stdin.writeEnd.close()
            throw error
        }
        defer {
            stdin.readEnd.close()
            stdout.writeEnd.close()
            stderr.writeEnd.close()
        }
        for pipe in [stdin, stdout] { _ = sluice_set_pipe_size(pipe.writeEnd.rawValue, Int32(Self.pipeCapacity)) }
        var arguments = [path]
        if !context.call.argument.isEmpty { arguments.append(context.call.argument.rawValue) }
        let environment = Self.environment(context, account: account) + extraEnvironment
        let descriptors: [(parent: FileDescriptor, child: Int32)] = [
            (stdin.readEnd, 0), (stdout.writeEnd, 1), (stderr.writeEnd, 2),
        ]
        let process: ChildProcess
        do {
            if let account, UserAccount.canSwitchUsers, account.uid != geteuid() {
                process = try ChildProcess.spawn(
                    path: path, arguments: arguments, environment: environment, descriptors: descriptors,
                    newProcessGroup: true,
                    workingDirectory: account.home, user: account)
            } else {
                process = try ChildProcess.spawn(
                    path: path, arguments: arguments, environment: environment, descriptors: descriptors,
                    newProcessGroup: true,
                    workingDirectory: account?.home)
            }
        } catch {
            stdin.writeEnd.close()
            stdout.readEnd.close()
            stderr.readEnd.close()
            throw error
        }
        let exit = try? process.exitDescriptor()
        for descriptor in [stdin.writeEnd, stdout.readEnd, stderr.readEnd] {
            try? UnixSocket.setNonBlocking(descriptor)
        }
        logger.debug(
            "started handler",
            metadata: ["service": "\(context.call.fullName)", "source": "\(context.source)", "pid": "\(process.pid)"])
        return RunningHandler(
            kind: .process(process), entry: entry, configuration: configuration, input: stdin.writeEnd,
            output: stdout.readEnd,
            errorOutput: stderr.readEnd, exitDescriptor: exit, deadline: deadline, permit: permit)
    }

    static func environment(_ context: CallContext, account: UserAccount?) -> [String] {
        var environment = [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "QREXEC_REMOTE_DOMAIN=\(context.source)",
            "QREXEC_SERVICE_FULL_NAME=\(context.call.fullName)",
            "QREXEC_SERVICE_ARGUMENT=\(context.call.argument)",
            "QREXEC_AGENT_PID=\(getpid())",
            "SLUICE_SOURCE=\(context.source)",
            "SLUICE_SERVICE=\(context.call.service)",
            "SLUICE_ARGUMENT=\(context.call.argument)",
            "SLUICE_REQUESTED_TARGET=\(context.requestedTarget)",
        ]
        if context.inAdminDomain {
            let target = context.requestedTarget.rawValue
            environment.append("QREXEC_REQUESTED_TARGET_TYPE=\(context.requestedTargetType)")
            if target.hasPrefix("@") {
                environment.append("QREXEC_REQUESTED_TARGET_KEYWORD=\(target.dropFirst())")
            } else {
                environment.append("QREXEC_REQUESTED_TARGET=\(target)")
            }
        } else {
            environment.append("QREXEC_REQUESTED_TARGET_TYPE=")
        }
        if let id = context.callID { environment.append("SLUICE_CALL_ID=\(id)") }
        if let account {
            environment += [
                "HOME=\(account.home)", "USER=\(account.name)", "LOGNAME=\(account.name)", "SHELL=\(account.shell)",
            ]
        }
        for name in ["LANG", "LC_ALL", "QREXEC_SERVICE_PATH", "TZ"] {
            if let value = getenv(name) { environment.append("\(name)=\(String(cString: value))") }
        }
        return environment
    }

}
