public import Logging
public import SluiceDaemon
import SluiceLocks
public import SluicePolicy
import SluiceSystem
import SluiceVchan
public import SluiceWire
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `sluice-host`: several simulated domains on one machine, for development, tests and single-host compartments.
///
/// It runs the local vchan broker, starts `sluiced` as the admin domain and one `sluice-agent` per running domain
/// (dom0 included, for calls to and from it), each with `SERVICES_ROOT/<domain>` as its service directory and
/// `RUN_DIR/<domain>/agent.sock` as its client socket. `RUN_DIR/<domain>/vchan.sock` is the domain's rendezvous.
///
/// Run as root, each domain runs as a user of its own (`DomainUsers`): its agent and handlers, its directory
/// `RUN_DIR/<domain>` (mode 0700, its home inside), its agent socket (0600) and its rendezvous socket (0600) are that
/// user's, and both sockets also check the kernel's credentials of every process that connects. Not as root, every
/// domain shares the host's uid, and the host says at start-up that they are not isolated.
public final class LocalHost: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var runDirectory: String
        public var inventory: Inventory
        public var policyDirectories: [String]
        public var servicesRoot: String
        public var auditLogPath: String
        public var askCommand: String?
        /// Passed to `sluiced --max-calls-per-domain` when set.
        public var maxCallsPerDomain: Int?
        /// More `sluiced` options, passed as they are (`--max-request-bytes 100`, ...).
        public var daemonOptions: [String] = []
        /// More `sluice-agent` options for every agent (`--max-clients 8`, ...).
        public var agentOptions: [String] = []
        /// Where `sluiced` and `sluice-agent` are; by default, next to the running executable.
        public var executablesDirectory: String
        /// Whether each domain runs as a user of its own (`automatic`: when the host runs as root).
        public var isolation: Isolation = .automatic

        public init(
            runDirectory: String, inventory: Inventory, policyDirectories: [String], servicesRoot: String,
            auditLogPath: String? = nil,
            askCommand: String? = nil, executablesDirectory: String
        ) {
            self.runDirectory = runDirectory
            self.inventory = inventory
            self.policyDirectories = policyDirectories
            self.servicesRoot = servicesRoot
            self.auditLogPath = auditLogPath ?? runDirectory + "/audit.log"
            self.askCommand = askCommand
            self.executablesDirectory = executablesDirectory
        }
    }

    /// Whether domains run as users of their own.
    public enum Isolation: Sendable, Hashable {
        /// When the host runs as root (the only way it can start processes as other users).
        case automatic
        /// Never: every domain runs as the host's uid, and is not isolated from the others.
        case sharedUID
    }

    public let configuration: Configuration
    public let directory: DomainDirectory
    public let users: DomainUsers
    private let logger: Logger
    /// The account each domain (and disposable) runs as, by name; absent: the host's own.
    private let accounts = LockedValue<[String: UserAccount]>([:])
    private var broker: LocalVchanBroker?
    /// Every process the host runs, by name: `@daemon` for sluiced (no domain can have that name), else the
    /// domain's name.
    private let children = LockedValue<[String: Child]>([:])
    private let disposables = LockedValue(Disposables())
    private let stopping = Atomic<Bool>(false)
    private static let daemonKey = "@daemon"

    struct Child {
        var process: ChildProcess
        var arguments: [String]
        var environment: [String]
        var account: UserAccount?
        var workingDirectory: String?
    }

    /// The disposables that exist now, and where the next one's id search starts.
    struct Disposables {
        var byName: [String: (id: DomainID, template: DomainName)] = [:]
        var nextID: UInt16 = 0
    }

    /// The largest domain id a disposable gets (Xen's DOMID_FIRST_RESERVED is 0x7FF0).
    static let lastDisposableID: UInt16 = 0x7FEF

    public init(configuration: Configuration, logger: Logger) {
        // Paths are made absolute: agents run in their domain's home, not in the host's working directory.
        var configuration = configuration
        configuration.runDirectory = Self.absolute(configuration.runDirectory)
        configuration.servicesRoot = Self.absolute(configuration.servicesRoot)
        configuration.auditLogPath = Self.absolute(configuration.auditLogPath)
        configuration.policyDirectories = configuration.policyDirectories.map(Self.absolute)
        self.configuration = configuration
        directory = DomainDirectory(configuration.inventory)
        self.logger = logger
        users = DomainUsers(isolating: configuration.isolation == .automatic && geteuid() == 0, logger: logger)
    }

    func domainDirectory(_ name: DomainName) -> String { configuration.runDirectory + "/" + name.rawValue }

    /// Starts everything and returns once every running domain's agent is connected (or throws).
    public func start(readyTimeoutMilliseconds: Int32 = 30_000) throws(SluiceError) {
        let run = configuration.runDirectory
        if !users.isolating {
            logger.warning(
                "every domain runs as uid \(geteuid()), so domains are not isolated from each other (sluice-host gives each domain a user of its own only when it runs as root; docs/threat-model.md)"
            )
        }
        mkdir(run, 0o755)
        chmod(run, 0o755)
        mkdir(run + "/vchan", 0o755)
        chmod(run + "/vchan", 0o755)
        // Every domain's account first (made if needed): its rendezvous socket is its user's.
        var domains: [LocalVchanBroker.Domain] = []
        for (index, name) in directory.names.enumerated() {
            let account = try users.account(for: name, entry: configuration.inventory.domain(named: name.rawValue))
            accounts.withLock { $0[name.rawValue] = account }
            domains.append(.init(id: DomainID(rawValue: UInt16(index))!, uid: account?.uid))
        }
        if let account = accounts.withLock({ $0.values.first }) {
            try users.checkAccess(
                account, executable: configuration.executablesDirectory + "/sluice-agent",
                directories: [run, configuration.servicesRoot])
        }
        ProcessDescriptors.raiseLimit(to: 1 << 20)
        broker = try LocalVchanBroker(directory: run + "/vchan", domains: domains, logger: logger)
        var running: [DomainName] = []
        for name in directory.names {
            try prepareDirectory(name, id: directory.id(of: name.rawValue)!)
            let domain = configuration.inventory.domain(named: name.rawValue)
            if name == .admin || domain?.isRunning == true { running.append(name) }
        }
        let executables = configuration.executablesDirectory
        var daemonArguments = [
            executables + "/sluiced", "--rendezvous", broker!.socketPath(for: .admin), "--inventory",
            run + "/inventory.json", "--audit-log", configuration.auditLogPath, "--toolstack", run + "/toolstack.sock",
        ]
        let toolstack = try UnixSocket.listen(at: run + "/toolstack.sock", kind: .datagram, mode: 0o600)
        disposables.withLock { $0.nextID = UInt16(directory.names.count) }
        try OSThread.start { [self] in serveToolstack(toolstack) }
        for policy in configuration.policyDirectories { daemonArguments += ["--policy-dir", policy] }
        if let ask = configuration.askCommand { daemonArguments += ["--ask-command", ask] }
        if let limit = configuration.maxCallsPerDomain { daemonArguments += ["--max-calls-per-domain", String(limit)] }
        daemonArguments += configuration.daemonOptions
        try writeInventory(run + "/inventory.json")
        let status = try Pipe()
        let daemon = try ChildProcess.spawn(
            path: daemonArguments[0], arguments: daemonArguments, environment: Self.environment(),
            descriptors: [(status.writeEnd, 1), (.standardError, 2)])
        status.writeEnd.close()
        children.withLock {
            $0[Self.daemonKey] = Child(
                process: daemon, arguments: daemonArguments, environment: Self.environment(), account: nil,
                workingDirectory: nil)
        }
        var text = ""
        func readLines(until done: (String) -> Bool, _ what: String) throws(SluiceError) {
            let deadline = MonotonicClock.milliseconds + Int(readyTimeoutMilliseconds)
            while true {
                while let newline = text.firstIndex(of: "\n") {
                    let line = String(text[..<newline])
                    text = String(text[text.index(after: newline)...])
                    if done(line) { return }
                }
                let remaining = deadline - MonotonicClock.milliseconds
                guard remaining > 0, try Readiness.wait(status.readEnd, timeoutMilliseconds: Int32(remaining)).first
                else {
                    throw SluiceError(.channelClosed, "sluiced did not report \(what) in time")
                }
                let bytes = try status.readEnd.read(upTo: 4_096)
                if bytes.isEmpty { throw SluiceError(.channelClosed, "sluiced exited during start-up") }
                text += String(decoding: bytes, as: UTF8.self)
            }
        }
        try readLines(until: { $0 == "listening" }, "listening")
        for name in running {
            try startAgent(name, id: directory.id(of: name.rawValue)!, services: name)
        }
        var connected: Set<String> = []
        let expected = Set(running.map(\.rawValue))
        try readLines(
            until: { line in
                if line.hasPrefix("connected ") { connected.insert(String(line.dropFirst("connected ".count))) }
                return expected.isSubset(of: connected)
            }, "every agent connected")
        // Keep draining sluiced's status lines so it never blocks on a full pipe.
        let reader = status.readEnd
        try OSThread.start {
            while let bytes = try? reader.read(upTo: 4_096), !bytes.isEmpty {}
            reader.close()
        }
        try OSThread.start { [self] in supervise() }
    }

    /// Starts a domain's agent, with `SERVICES_ROOT/<services>` as its service directory (a disposable's is its
    /// template's).
    func startAgent(_ name: DomainName, id: DomainID, services: DomainName) throws(SluiceError) {
        let arguments =
            [
                configuration.executablesDirectory + "/sluice-agent", "--domain", name.rawValue, "--domain-id",
                String(id.rawValue), "--rendezvous", broker!.socketPath(for: id), "--socket",
                domainDirectory(name) + "/agent.sock", "--services",
                configuration.servicesRoot + "/" + services.rawValue,
            ] + configuration.agentOptions
        let home = domainDirectory(name) + "/home"
        let environment = Self.environment().filter { !$0.hasPrefix("HOME=") } + ["HOME=" + home]
        let account = accounts.withLock { $0[name.rawValue] }
        let agent = try Self.spawn(arguments, environment: environment, account: account, workingDirectory: home)
        children.withLock {
            $0[name.rawValue] = Child(
                process: agent, arguments: arguments, environment: environment, account: account,
                workingDirectory: home)
        }
    }

    /// Starts a program as `account` (the host's own user when nil), with the host's stderr.
    static func spawn(_ arguments: [String], environment: [String], account: UserAccount?, workingDirectory: String?)
        throws(SluiceError) -> ChildProcess
    {
        if let account {
            return try ChildProcess.spawn(
                path: arguments[0], arguments: arguments, environment: environment,
                descriptors: [(.standardError, 2)], newProcessGroup: false, workingDirectory: workingDirectory,
                user: account)
        }
        return try ChildProcess.spawn(
            path: arguments[0], arguments: arguments, environment: environment, descriptors: [(.standardError, 2)],
            workingDirectory: workingDirectory)
    }

    /// Makes `RUN_DIR/<domain>` (and its home) the domain's own, mode 0700, with its rendezvous socket linked in.
    private func prepareDirectory(_ name: DomainName, id: DomainID) throws(SluiceError) {
        let path = domainDirectory(name)
        let account = accounts.withLock { $0[name.rawValue] }
        for directory in [path, path + "/home"] {
            guard mkdir(directory, 0o700) == 0 || errno == EEXIST else {
                throw SluiceError(.systemCallFailed, "cannot make \(directory): \(String(cString: strerror(errno)))")
            }
            if let account { chown(directory, account.uid, account.gid) }
            chmod(directory, 0o700)
        }
        let link = path + "/vchan.sock"
        unlink(link)
        symlink(broker!.socketPath(for: id), link)
    }

    /// The toolstack role for the daemon, one datagram each way (see `Toolstack`): `start NAME` starts a halted
    /// domain's agent (autostart); `create TEMPLATE` makes a disposable `dispNNNN` with the next free id, served
    /// from the template's service directory; `destroy NAME` stops a disposable's agent and forgets it.
    private func serveToolstack(_ listener: FileDescriptor) {
        defer {
            listener.close()
            unlink(configuration.runDirectory + "/toolstack.sock")
        }
        while !stopping.load(ordering: .acquiring) {
            guard let connection = try? UnixSocket.accept(listener) else { continue }
            let socket = DatagramSocket(descriptor: connection)
            defer { connection.close() }
            guard !stopping.load(ordering: .acquiring), let request = try? socket.receive(maxBytes: 1_024) else {
                continue
            }
            let words = String(decoding: request.bytes, as: UTF8.self).split(separator: " ").map(String.init)
            let reply: String
            do throws(SluiceError) {
                switch (words.first, words.count) {
                case ("start", 2): reply = try startHalted(try DomainName(words[1]))
                case ("create", 2): reply = try createDisposable(from: try DomainName(words[1]))
                case ("destroy", 2): reply = try destroyDisposable(try DomainName(words[1]))
                default: throw SluiceError(.toolstackFailed, "unknown request")
                }
            } catch {
                logger.warning("toolstack: '\(words.joined(separator: " "))' failed: \(error.message)")
                reply = "error: \(error.message)"
            }
            try? socket.send(Array(reply.utf8))
        }
    }

    private func startHalted(_ name: DomainName) throws(SluiceError) -> String {
        guard let id = directory.id(of: name.rawValue) else {
            throw SluiceError(.toolstackFailed, "no domain \(name) in the inventory")
        }
        if children.withLock({ $0[name.rawValue] != nil }) { return "ok" }
        try startAgent(name, id: id, services: name)
        logger.notice("started \(name) for autostart")
        return "ok"
    }

    private func createDisposable(from template: DomainName) throws(SluiceError) -> String {
        guard configuration.inventory.domain(named: template.rawValue)?.templateForDispVMs == true else {
            throw SluiceError(.toolstackFailed, "\(template) is not a template for disposables")
        }
        let first = UInt16(directory.names.count)
        let allocated: (DomainName, DomainID)? = disposables.withLock { state in
            let usedIDs = Set(state.byName.values.map(\.id.rawValue))
            var candidate = state.nextID
            for _ in first...Self.lastDisposableID {
                if candidate > Self.lastDisposableID || candidate < first { candidate = first }
                if !usedIDs.contains(candidate) { break }
                candidate += 1
            }
            guard !usedIDs.contains(candidate), state.byName.count < 9_999 else { return nil }
            state.nextID = candidate + 1
            // Qubes names disposables dispNNNN with a random number; taken names are skipped.
            var name = ""
            repeat {
                name = "disp\(UInt16.random(in: 1...9_999))"
            } while state.byName[name] != nil || directory.id(of: name) != nil
            guard let id = DomainID(rawValue: candidate), let domainName = try? DomainName(name) else { return nil }
            state.byName[name] = (id, template)
            return (domainName, id)
        }
        guard let (name, id) = allocated else { throw SluiceError(.toolstackFailed, "no free disposable id") }
        do throws(SluiceError) {
            guard let broker else { throw SluiceError(.toolstackFailed, "the host is stopping") }
            // A user of its own for its life: nothing it leaves can reach the next disposable.
            let account = try users.account(for: name, entry: nil)
            accounts.withLock { $0[name.rawValue] = account }
            try broker.add(.init(id: id, uid: account?.uid))
            try prepareDirectory(name, id: id)
            try startAgent(name, id: id, services: template)
        } catch {
            disposables.withLock { $0.byName[name.rawValue] = nil }
            broker?.remove(id)
            if let account = accounts.withLock({ $0.removeValue(forKey: name.rawValue) }) { users.remove(account) }
            throw error
        }
        logger.notice("created disposable \(name) (id \(id)) from \(template)")
        return "ok \(name.rawValue) \(id.rawValue)"
    }

    private func destroyDisposable(_ name: DomainName) throws(SluiceError) -> String {
        guard let (id, _) = disposables.withLock({ $0.byName.removeValue(forKey: name.rawValue) }) else {
            throw SluiceError(.toolstackFailed, "\(name) is not a disposable of this host")
        }
        if let child = children.withLock({ $0.removeValue(forKey: name.rawValue) }) {
            Self.terminate([child.process])
        }
        broker?.remove(id)
        if let account = accounts.withLock({ $0.removeValue(forKey: name.rawValue) }) { users.remove(account) }
        Self.removeTree(domainDirectory(name))
        logger.notice("destroyed disposable \(name)")
        return "ok"
    }

    /// The disposables that exist now (for tests and status).
    public var disposableNames: [String] { disposables.withLock { Array($0.byName.keys) }.sorted() }

    /// Restarts any process that dies while the host runs: a restarted daemon re-offers every control channel and
    /// the agents reconnect by themselves; a restarted agent reconnects to the daemon.
    private func supervise() {
        while !stopping.load(ordering: .acquiring) {
            usleep(50_000)
            let dead = children.withLock { list in
                list.filter { (try? $0.value.process.poll()) != nil }.map { ($0.key, $0.value.process.pid) }
            }
            for (name, pid) in dead where !stopping.load(ordering: .acquiring) {
                guard let arguments = children.withLock({ $0[name]?.process.pid == pid ? $0[name]?.arguments : nil })
                else { continue }
                logger.warning("\(name == Self.daemonKey ? "sluiced" : name) exited; restarting it")
                guard let child = children.withLock({ $0[name] }),
                    let process = try? Self.spawn(
                        arguments, environment: child.environment, account: child.account,
                        workingDirectory: child.workingDirectory)
                else { continue }
                // stop() or a destroy may have removed the entry meanwhile: then the new process goes too.
                let kept = children.withLock { list -> Bool in
                    guard list[name]?.process.pid == pid, !stopping.load(ordering: .acquiring) else { return false }
                    list[name]?.process = process
                    return true
                }
                if !kept { Self.terminate([process]) }
            }
        }
    }

    /// SIGTERM, then SIGKILL for whatever is left after a second; every process is reaped.
    static func terminate(_ processes: [ChildProcess]) {
        for process in processes { process.send(signal: SIGTERM) }
        let deadline = MonotonicClock.milliseconds + 1_000
        for process in processes {
            while (try? process.poll()) == nil && MonotonicClock.milliseconds < deadline { usleep(5_000) }
            if (try? process.poll()) == nil {
                process.send(signal: SIGKILL)
                _ = try? process.wait()
            }
        }
    }

    /// Stops every process (SIGTERM, then SIGKILL after a second), the toolstack thread and the broker.
    public func stop() {
        stopping.store(true, ordering: .releasing)
        // Wake the toolstack thread from accept(); it sees the flag and closes its socket.
        if let wake = try? UnixSocket.connect(to: configuration.runDirectory + "/toolstack.sock", kind: .datagram) {
            wake.close()
        }
        usleep(60_000)  // let the supervisor see the flag
        let list = children.withLock { list in
            defer { list.removeAll() }
            return Array(list.values)
        }
        Self.terminate(list.map(\.process))
        broker?.stop()
        broker = nil
    }

    /// `path` from the working directory, if it is relative.
    static func absolute(_ path: String) -> String {
        guard !path.hasPrefix("/"), let cwd = getcwd(nil, 0) else { return path }
        defer { free(cwd) }
        return String(cString: cwd) + "/" + path
    }

    /// Removes a directory and everything in it (a disposable's, whatever its handlers left there).
    static func removeTree(_ path: String) {
        guard
            let remover = try? ChildProcess.spawn(
                path: "/bin/rm", arguments: ["rm", "-rf", "--one-file-system", "--", path], environment: [],
                descriptors: [])
        else { return }
        _ = try? remover.wait()
    }

    private func writeInventory(_ path: String) throws(SluiceError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SluiceError(.systemCallFailed, "cannot write \(path)") }
        defer { close(fd) }
        try FileDescriptor(rawValue: fd).writeAll(Array(configuration.inventory.json.serialized.utf8))
    }

    static func environment() -> [String] {
        // The daemon and the agents end with the host (see `ParentWatch`), even when it is killed with SIGKILL.
        var environment = [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ParentWatch.askingChildren,
        ]
        for name in ["HOME", "LANG", "SLUICE_LOG_LEVEL", "SLUICE_TRACE", "SLUICE_BUSY_POLL_US"] {
            if let value = getenv(name) { environment.append("\(name)=\(String(cString: value))") }
        }
        return environment
    }

}
