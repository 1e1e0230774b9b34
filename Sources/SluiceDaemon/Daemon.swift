public import Logging
public import SluicePolicy
import SluiceSystem
import SluiceVchan
public import SluiceWire
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `sluiced`: the admin domain's broker. One control channel per domain; every call request is validated, its
/// source taken from the channel it arrived on, decided by the policy (calls from the admin domain bypass it, as in
/// qrexec), and, when allowed, brokered: the target's agent gets `exec` and the caller's agent gets `connect`, and
/// the two meet on a per-call data channel that the admin domain never carries.
public final class Daemon: Sendable {
    public struct Configuration: Sendable {
        public var inventory: Inventory
        public var policyDirectories: [String]
        public var compatDirectory: String
        public var rendezvousPath: String
        public var auditLogPath: String?
        /// The toolstack's socket (`sluice-host` serves one): asked to start a halted target when policy allows
        /// autostart. Without it, a call to a domain that is not running is refused.
        public var toolstackPath: String?
        /// Calls in flight from one domain, and in all; a request over either is refused with its own code.
        public var maxCallsPerDomain: Int
        public var maxCallsTotal: Int

        public init(
            inventory: Inventory, policyDirectories: [String],
            compatDirectory: String = PolicyLoader.defaultCompatDirectory,
            rendezvousPath: String, auditLogPath: String? = nil, toolstackPath: String? = nil,
            maxCallsPerDomain: Int = 64,
            maxCallsTotal: Int = 1_024
        ) {
            self.inventory = inventory
            self.policyDirectories = policyDirectories
            self.compatDirectory = compatDirectory
            self.rendezvousPath = rendezvousPath
            self.auditLogPath = auditLogPath
            self.toolstackPath = toolstackPath
            self.maxCallsPerDomain = maxCallsPerDomain
            self.maxCallsTotal = maxCallsTotal
        }
    }

    public let configuration: Configuration
    public let directory: DomainDirectory
    public let policy: PolicyStore
    private let askAgent: any AskAgent
    private let audit: AuditLog?
    private let logger: Logger
    private let rendezvous: VchanRendezvous
    private let reactor: Reactor
    private let state = Mutex(State())
    /// Called with a domain's name when its agent connects (`sluice-host` waits for all of them).
    private let onConnect: @Sendable (DomainName) -> Void

    struct InFlight {
        var record: AuditLog.Record
        var started: UInt64
        var source: DomainID
        var port: VchanPort
    }

    struct State {
        var links: [DomainID: VchanFrameChannel] = [:]
        var inFlight: [UInt64: InFlight] = [:]
        var perDomain: [DomainID: Int] = [:]
        var ports: Set<UInt16> = []
        var nextPort: UInt16 = 513
        var nextCall: UInt64 = 1
    }

    public init(
        configuration: Configuration, askAgent: any AskAgent, logger: Logger,
        onConnect: @escaping @Sendable (DomainName) -> Void = { _ in }
    ) throws(SluiceError) {
        self.configuration = configuration
        directory = DomainDirectory(configuration.inventory)
        self.askAgent = askAgent
        self.logger = logger
        self.onConnect = onConnect
        rendezvous = try VchanRendezvous(path: configuration.rendezvousPath)
        reactor = try Reactor(logger: logger)
        audit = try configuration.auditLogPath.map { (path) throws(SluiceError) in try AuditLog(path: path) }
        policy = PolicyStore(state: .unusable(PolicyError(path: "-", message: "not loaded yet")))
        reloadPolicy()
    }

    /// Loads the policy again; a broken policy denies everything until fixed.
    public func reloadPolicy() {
        let loader = PolicyLoader(compatDirectory: configuration.compatDirectory)
        let directories = configuration.policyDirectories
        if let error = policy.reload(
            inventory: configuration.inventory, { () throws(PolicyError) in try loader.load(directories: directories) })
        {
            logger.error("the policy is unusable, every call is denied: \(error)")
        } else {
            logger.info("policy loaded")
        }
    }

    /// Serves every domain of the inventory, and reloads the policy when its files change. `onListening` runs
    /// once every domain's control channel is offered, so agents started after it never race the daemon.
    public func run(onListening: @Sendable () -> Void = {}) async {
        var first: [DomainID: LocalVchan] = [:]
        for (index, _) in directory.names.enumerated() {
            let id = DomainID(rawValue: UInt16(index))!
            first[id] = try? controlServer(for: id)
        }
        onListening()
        let initial = first
        await withTaskGroup(of: Void.self) { group in
            for (index, name) in directory.names.enumerated() {
                let id = DomainID(rawValue: UInt16(index))!
                group.addTask { await self.serveDomain(id, name, first: initial[id]) }
            }
            group.addTask { await self.watchPolicy() }
        }
    }

    private func controlServer(for id: DomainID) throws(SluiceError) -> LocalVchan {
        try LocalVchan.server(
            rendezvous: rendezvous, peer: id, port: .control, readMinimum: 131_072, writeMinimum: 131_072)
    }

    // MARK: Control channels

    private func serveDomain(_ id: DomainID, _ name: DomainName, first: LocalVchan?) async {
        var offered = first
        while true {
            do {
                let vchan = try offered ?? controlServer(for: id)
                offered = nil
                let channel = try VchanFrameChannel(
                    vchan: vchan, reactor: reactor, receiving: .agentToDaemon, logger: logger)
                defer {
                    state.withLock { $0.links[id] = nil }
                    channel.close()
                }
                guard case .hello(let peer) = try await channel.receive() else {
                    throw SluiceError(.unsupportedVersion, "the agent did not start with hello")
                }
                _ = try Hello.current.negotiate(with: peer)
                try await channel.send(.hello(.current))
                state.withLock { $0.links[id] = channel }
                logger.info("agent connected", metadata: ["domain": "\(name)"])
                onConnect(name)
                while true {
                    switch try await channel.receive() {
                    case .call(let request):
                        Task { await self.handle(request, from: id, name: name, channel: channel) }
                    case .done(let report):
                        finish(report)
                    case .cancel(let request):
                        // Cancelling a call that is already brokered travels on its data channel, not here.
                        logger.debug("ignoring cancel of request \(request) from \(name): it was already decided")
                    case .pong:
                        break
                    default:
                        throw SluiceError(.wrongDirection, "unexpected message from the agent")
                    }
                }
            } catch {
                logger.warning("control channel closed", metadata: ["domain": "\(name)", "reason": "\(error)"])
                try? await Task.sleep(nanoseconds: 20_000_000)
            }
        }
    }

    // MARK: Calls

    private func refuse(
        _ request: CallRequest, on channel: VchanFrameChannel, _ code: SluiceError.Code, _ message: String
    ) async {
        try? await channel.send(.refused(Refusal(id: request.id, code: code, message: message)))
    }

    private func handle(_ request: CallRequest, from source: DomainID, name: DomainName, channel: VchanFrameChannel)
        async
    {
        var record = AuditLog.Record(
            call: 0, source: name.rawValue, requestedTarget: request.target.rawValue, target: nil,
            service: request.call.service.rawValue, argument: request.call.argument.rawValue, decision: "deny")
        let target: String
        var user: UserName?
        var autostart = true
        if source == .admin {
            // Calls from the admin domain are not policy-checked, as in qrexec.
            record.decision = "allow"
            record.rule = nil
            target = request.target.rawValue == "@adminvm" ? "dom0" : request.target.rawValue
        } else {
            let decision: Decision
            switch policy.evaluate(
                PolicyRequest(
                    service: request.call.service.rawValue, argument: request.call.argument.rawValue,
                    source: name.rawValue,
                    target: request.target.rawValue, requestedSource: request.requestedSource?.rawValue))
            {
            case .success(let value): decision = value
            case .failure(let error):
                record.reason = "invalid-request"
                audit?.write(record)
                logger.info("invalid request from \(name): \(error.message)")
                return await refuse(request, on: channel, .refusedByPolicy, "Request refused")
            }
            record.rule = decision.rule
            record.requestedTarget = decision.requestedTarget
            switch decision.action {
            case .deny:
                record.reason = decision.reason?.rawValue
                audit?.write(record)
                return await refuse(request, on: channel, .refusedByPolicy, "Request refused")
            case .ask:
                let choices = decision.targetsForAsk ?? []
                let answer = askAgent.ask(
                    source: name.rawValue, service: request.call.service.rawValue,
                    argument: request.call.argument.rawValue,
                    targets: choices, defaultTarget: decision.defaultTarget)
                guard let chosen = answer, choices.contains(chosen) else {
                    record.decision = "ask"
                    record.reason = "denied-by-user"
                    audit?.write(record)
                    return await refuse(request, on: channel, .refusedByPolicy, "Request refused")
                }
                record.decision = "ask-allowed"
                target = chosen
            case .allow:
                record.decision = "allow"
                target = decision.target ?? ""
            }
            user = decision.user.flatMap { try? UserName($0) }
            autostart = decision.autostart ?? true
        }
        record.target = target
        if let targetID = directory.id(of: target), state.withLock({ $0.links[targetID] }) == nil, autostart {
            await start(target, id: targetID)
        }
        guard let targetID = directory.id(of: target), let targetLink = state.withLock({ $0.links[targetID] }) else {
            record.reason = "target-not-running"
            audit?.write(record)
            return await refuse(request, on: channel, .channelClosed, "the target domain is not running")
        }
        let admitted: (UInt64, VchanPort)? = state.withLock { state in
            guard state.inFlight.count < configuration.maxCallsTotal,
                state.perDomain[source, default: 0] < configuration.maxCallsPerDomain
            else { return nil }
            var port = state.nextPort
            while state.ports.contains(port) { port = port == UInt16.max ? 513 : port + 1 }
            state.nextPort = port == UInt16.max ? 513 : port + 1
            state.ports.insert(port)
            let call = state.nextCall
            state.nextCall += 1
            record.call = call
            state.inFlight[call] = InFlight(
                record: record, started: MonotonicClock.nanoseconds, source: source, port: VchanPort(rawValue: port)!)
            state.perDomain[source, default: 0] += 1
            return (call, VchanPort(rawValue: port)!)
        }
        guard let (call, port) = admitted else {
            record.reason = "too-many-calls"
            audit?.write(record)
            return await refuse(request, on: channel, .tooManyCalls, "too many calls in flight")
        }
        let callID = RequestID(rawValue: call)!
        let order = ExecOrder(
            call: callID, serviceCall: request.call, source: name, requestedTarget: request.target, user: user,
            rendezvous: Rendezvous(domain: source, port: port))
        do {
            // The caller serves the data channel, so it hears first: the target's agent then rarely has to retry.
            try await channel.send(
                .connect(
                    ConnectOrder(id: request.id, call: callID, rendezvous: Rendezvous(domain: targetID, port: port))))
            try await targetLink.send(.exec(order))
        } catch {
            finish(CallReport(call: callID, exitCode: 125, bytesIn: 0, bytesOut: 0))
        }
    }

    /// Asks the toolstack to start a halted domain, then waits up to 10 s for its agent to connect.
    private func start(_ name: String, id: DomainID) async {
        guard let path = configuration.toolstackPath else { return }
        do {
            let socket = DatagramSocket(descriptor: try UnixSocket.connect(to: path, kind: .datagram))
            defer { socket.descriptor.close() }
            try socket.send(Array("start \(name)".utf8))
            guard let reply = try socket.receive(maxBytes: 1_024), reply.bytes.starts(with: Array("ok".utf8)) else {
                logger.warning("the toolstack did not start \(name)")
                return
            }
        } catch {
            logger.warning("cannot reach the toolstack to start \(name): \(error)")
            return
        }
        let deadline = MonotonicClock.milliseconds + 10_000
        while state.withLock({ $0.links[id] }) == nil && MonotonicClock.milliseconds < deadline {
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
    }

    private func finish(_ report: CallReport) {
        guard
            let flight = state.withLock({ state -> InFlight? in
                guard let flight = state.inFlight.removeValue(forKey: report.call.rawValue) else { return nil }
                state.ports.remove(flight.port.rawValue)
                state.perDomain[flight.source, default: 1] -= 1
                return flight
            })
        else { return }
        var record = flight.record
        record.exitCode = Int(report.exitCode)
        record.bytesIn = report.bytesIn
        record.bytesOut = report.bytesOut
        record.durationMilliseconds = Double(MonotonicClock.nanoseconds - flight.started) / 1e6
        audit?.write(record)
    }

    // MARK: Policy reload

    /// Reloads the policy when a file in its directories changes (checked every second).
    private func watchPolicy() async {
        var last = policySignature()
        while true {
            try? await Task.sleep(nanoseconds: 1_000_000_000)
            let current = policySignature()
            if current != last {
                last = current
                reloadPolicy()
            }
        }
    }

    private func policySignature() -> [String] {
        var entries: [String] = []
        for directory in configuration.policyDirectories {
            guard let handle = opendir(directory) else { continue }
            defer { closedir(handle) }
            while let entry = readdir(handle) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) {
                    String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self)
                }
                var info = stat()
                if stat(directory + "/" + name, &info) == 0 {
                    entries.append(
                        "\(directory)/\(name):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec):\(info.st_size)")
                }
            }
        }
        return entries.sorted()
    }

}
