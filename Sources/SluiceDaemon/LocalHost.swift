public import Logging
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
        /// Where `sluiced` and `sluice-agent` are; by default, next to the running executable.
        public var executablesDirectory: String

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

    public let configuration: Configuration
    public let directory: DomainDirectory
    private let logger: Logger
    private var broker: LocalVchanBroker?
    private let children = Mutex<[(name: String, process: ChildProcess, arguments: [String])]>([])
    private let stopping = Atomic<Bool>(false)

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        directory = DomainDirectory(configuration.inventory)
        self.logger = logger
    }

    func domainDirectory(_ name: DomainName) -> String { configuration.runDirectory + "/" + name.rawValue }

    /// Starts everything and returns once every running domain's agent is connected (or throws).
    public func start(readyTimeoutMilliseconds: Int32 = 30_000) throws(SluiceError) {
        let run = configuration.runDirectory
        mkdir(run, 0o755)
        mkdir(run + "/vchan", 0o755)
        broker = try LocalVchanBroker(
            directory: run + "/vchan",
            domains: directory.names.indices.map { .init(id: DomainID(rawValue: UInt16($0))!) }, logger: logger)
        var running: [DomainName] = []
        for name in directory.names {
            mkdir(domainDirectory(name), 0o755)
            let link = domainDirectory(name) + "/vchan.sock"
            unlink(link)
            symlink(broker!.socketPath(for: directory.id(of: name.rawValue)!), link)
            let domain = configuration.inventory.domain(named: name.rawValue)
            if name == .admin || domain?.isRunning == true { running.append(name) }
        }
        let executables = configuration.executablesDirectory
        var daemonArguments = [
            executables + "/sluiced", "--rendezvous", broker!.socketPath(for: .admin), "--inventory",
            run + "/inventory.json", "--audit-log", configuration.auditLogPath, "--toolstack", run + "/toolstack.sock",
        ]
        let toolstack = try UnixSocket.listen(at: run + "/toolstack.sock", kind: .datagram, mode: 0o600)
        try OSThread.start { [self] in serveToolstack(toolstack) }
        for policy in configuration.policyDirectories { daemonArguments += ["--policy-dir", policy] }
        if let ask = configuration.askCommand { daemonArguments += ["--ask-command", ask] }
        if let limit = configuration.maxCallsPerDomain { daemonArguments += ["--max-calls-per-domain", String(limit)] }
        try writeInventory(run + "/inventory.json")
        let status = try Pipe()
        let daemon = try ChildProcess.spawn(
            path: daemonArguments[0], arguments: daemonArguments, environment: Self.environment(),
            descriptors: [(status.writeEnd, 1), (.standardError, 2)])
        status.writeEnd.close()
        children.withLock { $0.append(("sluiced", daemon, daemonArguments)) }
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
            let id = directory.id(of: name.rawValue)!
            let arguments = [
                executables + "/sluice-agent", "--domain", name.rawValue, "--domain-id", String(id.rawValue),
                "--rendezvous",
                broker!.socketPath(for: id), "--socket", domainDirectory(name) + "/agent.sock", "--services",
                configuration.servicesRoot + "/" + name.rawValue,
            ]
            let agent = try ChildProcess.spawn(
                path: arguments[0], arguments: arguments, environment: Self.environment(),
                descriptors: [(.standardError, 2)])
            children.withLock { $0.append((name.rawValue, agent, arguments)) }
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

    func agentArguments(_ name: DomainName) -> [String] {
        let id = directory.id(of: name.rawValue)!
        return [
            configuration.executablesDirectory + "/sluice-agent", "--domain", name.rawValue, "--domain-id",
            String(id.rawValue),
            "--rendezvous", broker!.socketPath(for: id), "--socket", domainDirectory(name) + "/agent.sock",
            "--services",
            configuration.servicesRoot + "/" + name.rawValue,
        ]
    }

    /// The toolstack role for the daemon: `start NAME` starts a halted domain's agent (autostart); the reply is
    /// `ok` or `error: ...`. Disposables (`create`, `destroy`) are not built yet.
    private func serveToolstack(_ listener: FileDescriptor) {
        while !stopping.load(ordering: .acquiring), let connection = try? UnixSocket.accept(listener) {
            let socket = DatagramSocket(descriptor: connection)
            defer { connection.close() }
            guard let request = try? socket.receive(maxBytes: 1_024) else { continue }
            let text = String(decoding: request.bytes, as: UTF8.self)
            var reply = "error: unknown request"
            if text.hasPrefix("start "), let name = try? DomainName(String(text.dropFirst(6))),
                directory.id(of: name.rawValue) != nil
            {
                let running = children.withLock { list in list.contains { $0.name == name.rawValue } }
                if running {
                    reply = "ok"
                } else if let agent = try? ChildProcess.spawn(
                    path: agentArguments(name)[0], arguments: agentArguments(name), environment: Self.environment(),
                    descriptors: [(.standardError, 2)])
                {
                    children.withLock { $0.append((name.rawValue, agent, agentArguments(name))) }
                    logger.notice("started \(name) for autostart")
                    reply = "ok"
                }
            }
            try? socket.send(Array(reply.utf8))
        }
    }

    /// Restarts any process that dies while the host runs: a restarted daemon re-offers every control channel and
    /// the agents reconnect by themselves; a restarted agent reconnects to the daemon.
    private func supervise() {
        while !stopping.load(ordering: .acquiring) {
            usleep(50_000)
            let dead = children.withLock { list in list.indices.filter { (try? list[$0].process.poll()) != nil } }
            for index in dead where !stopping.load(ordering: .acquiring) {
                // stop() may have emptied the list meanwhile: look the entry up again under the lock.
                guard let (name, _, arguments) = children.withLock({ index < $0.count ? $0[index] : nil }) else {
                    continue
                }
                logger.warning("\(name) exited; restarting it")
                let output: [(parent: FileDescriptor, child: Int32)] = [(.standardError, 2)]
                guard
                    let process = try? ChildProcess.spawn(
                        path: arguments[0], arguments: arguments, environment: Self.environment(), descriptors: output)
                else { continue }
                let kept = children.withLock { list -> Bool in
                    guard index < list.count, !stopping.load(ordering: .acquiring) else { return false }
                    list[index] = (name, process, arguments)
                    return true
                }
                if !kept {
                    process.send(signal: SIGKILL)
                    _ = try? process.wait()
                }
            }
        }
    }

    /// Stops every process (SIGTERM, then SIGKILL after a second) and the broker.
    public func stop() {
        stopping.store(true, ordering: .releasing)
        usleep(60_000)  // let the supervisor see the flag
        let list = children.withLock { list in
            defer { list.removeAll() }
            return list
        }
        for child in list { child.process.send(signal: SIGTERM) }
        let deadline = MonotonicClock.milliseconds + 1_000
        for child in list {
            while (try? child.process.poll()) == nil && MonotonicClock.milliseconds < deadline { usleep(5_000) }
            if (try? child.process.poll()) == nil {
                child.process.send(signal: SIGKILL)
                _ = try? child.process.wait()
            }
        }
        broker?.stop()
        broker = nil
    }

    private func writeInventory(_ path: String) throws(SluiceError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SluiceError(.systemCallFailed, "cannot write \(path)") }
        defer { close(fd) }
        try FileDescriptor(rawValue: fd).writeAll(Array(configuration.inventory.json.serialized.utf8))
    }

    static func environment() -> [String] {
        var environment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        for name in ["HOME", "LANG", "SLUICE_LOG_LEVEL"] {
            if let value = getenv(name) { environment.append("\(name)=\(String(cString: value))") }
        }
        return environment
    }

}
