public import Logging
import SluiceLocks
public import SluicePolicy
import SluiceSystem
public import SluiceVchan
public import SluiceWire

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
        /// The vchan transport: local (with the admin domain's rendezvous socket) or Xen. On Xen the domains and
        /// their ids come from xenstore, watched while the daemon runs; the inventory then only adds what xenstore
        /// does not know (types, tags, templates, halted domains).
        public var transport: VchanTransport.Choice
        public var auditLogPath: String?
        /// Starts halted targets when policy allows autostart, and makes and destroys disposables (`sluice-host`
        /// serves one on a socket). Without it, a call to a domain that is not running, or to `@dispvm`, is refused.
        public var toolstack: (any Toolstack)?
        /// Calls in flight from one domain, and in all; a request over either is refused with `too-many-calls`.
        public var maxCallsPerDomain: Int
        public var maxCallsTotal: Int
        /// Questions waiting for the user from one domain, and in all; over either, `too-many-asks`.
        public var maxPendingAsksPerDomain: Int
        public var maxPendingAsksTotal: Int
        /// The longest request accepted, counted as the bytes of `SERVICE+ARG`, target and requested source;
        /// over it, `request-too-large`. The default admits qrexec's 65 000-byte `SERVICE+ARG`.
        public var maxRequestBytes: Int
        /// Call requests one domain may send per second on average (bursts up to the same number); over it, a
        /// request is refused with `rate-limited` before the policy is asked, the domain's channel is left unread for
        /// 100 ms, and the refusals are logged at most once a second per domain instead of audited one by one.
        public var maxRequestsPerSecond: Int
        /// Requests of one domain being decided at once; past it the daemon stops reading that domain's control
        /// channel until one is decided (backpressure on that domain alone).
        public var maxUndecidedPerDomain: Int
        /// How long the daemon waits for room on an agent's control channel before it decides the agent has stopped
        /// reading, cuts it off and ends the call (125), so a stalled target cannot hold its callers' calls.
        public var controlSendTimeoutMilliseconds: Int

        public init(
            inventory: Inventory, policyDirectories: [String],
            compatDirectory: String = PolicyLoader.defaultCompatDirectory,
            transport: VchanTransport.Choice, auditLogPath: String? = nil, toolstack: (any Toolstack)? = nil,
            maxCallsPerDomain: Int = 64,
            maxCallsTotal: Int = 1_024,
            maxPendingAsksPerDomain: Int = 4,
            maxPendingAsksTotal: Int = 32,
            maxRequestBytes: Int = 65_536,
            maxRequestsPerSecond: Int = 1_000,
            maxUndecidedPerDomain: Int = 32,
            controlSendTimeoutMilliseconds: Int = 5_000
        ) {
            self.inventory = inventory
            self.policyDirectories = policyDirectories
            self.compatDirectory = compatDirectory
            self.transport = transport
            self.auditLogPath = auditLogPath
            self.toolstack = toolstack
            self.maxCallsPerDomain = maxCallsPerDomain
            self.maxCallsTotal = maxCallsTotal
            self.maxPendingAsksPerDomain = maxPendingAsksPerDomain
            self.maxPendingAsksTotal = maxPendingAsksTotal
            self.maxRequestBytes = maxRequestBytes
            self.maxRequestsPerSecond = maxRequestsPerSecond
            self.maxUndecidedPerDomain = maxUndecidedPerDomain
            self.controlSendTimeoutMilliseconds = controlSendTimeoutMilliseconds
        }
    }

    /// How long a domain's control channel is left unread after a request over its rate.
    static let rateLimitPauseNanoseconds: UInt64 = 100_000_000

    public let configuration: Configuration
    public let directory: DomainDirectory
    public let policy: PolicyStore
    private let askAgent: any AskAgent
    private let audit: AuditLog?
    private let logger: Logger
    private let transport: VchanTransport
    private let reactor: Reactor
    private let state: LockedValue<State>
    /// Called with a domain's name when its agent connects (`sluice-host` waits for all of them).
    private let onConnect: @Sendable (DomainName) -> Void

    struct InFlight {
        var record: AuditLog.Record
        var started: UInt64
        var source: DomainID
        var port: VchanPort
        /// The disposable made for this call, destroyed when it ends.
        var disposable: DomainID?
        /// The control channel its `exec` went out on. Only that agent reports the call's end, so when the channel
        /// closes the call ends with it (else its slot, port and `ended` line would be lost for ever).
        var targetChannel: ObjectIdentifier?
    }

    /// A domain that appeared while the daemon runs: a disposable the toolstack made for one call, or (on Xen) a
    /// domain xenstore lists.
    struct DynamicDomain {
        var name: DomainName
        var server: Task<Void, Never>?
        var isDisposable: Bool
    }

    struct State {
        /// The inventory the policy sees: the configured one plus the disposables that exist now.
        var inventory: Inventory
        var dynamic: [DomainID: DynamicDomain] = [:]
        var dynamicIDs: [String: DomainID] = [:]
        var asks: [DomainID: Int] = [:]
        var totalAsks = 0
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
        // On Xen, ids come from xenstore: only dom0's is fixed.
        directory = DomainDirectory(
            configuration.transport == .xen ? Inventory(domains: []) : configuration.inventory)
        self.askAgent = askAgent
        self.logger = logger
        self.onConnect = onConnect
        state = LockedValue(State(inventory: configuration.inventory))
        transport = try VchanTransport.open(configuration.transport)
        reactor = try Reactor(logger: logger)
        audit = try configuration.auditLogPath.map { (path) throws(SluiceError) in
            try AuditLog(path: path, logger: logger)
        }
        policy = PolicyStore(state: .unusable(PolicyError(path: "-", message: "not loaded yet")))
        reloadPolicy()
    }

    /// Loads the policy again; a broken policy denies everything until fixed.
    public func reloadPolicy() {
        let loader = PolicyLoader(compatDirectory: configuration.compatDirectory)
        let directories = configuration.policyDirectories
        if let error = policy.reload(
            inventory: state.withLock { $0.inventory },
            { () throws(PolicyError) in try loader.load(directories: directories) })
        {
            logger.error("the policy is unusable, every call is denied: \(error)")
        } else {
            logger.info("policy loaded")
        }
    }

    /// Serves every domain of the inventory, and reloads the policy when its files change. `onListening` runs
    /// once every domain's control channel is offered, so agents started after it never race the daemon.
    public func run(onListening: @Sendable () -> Void = {}) async {
        // Locally every domain of the inventory has a fixed id; on Xen only dom0's is known before xenstore is read.
        let fixed: [(DomainID, DomainName)]
        if case .xen = transport {
            fixed = [(.admin, .admin)]
        } else {
            fixed = directory.names.enumerated().map { (DomainID(rawValue: UInt16($0.offset))!, $0.element) }
        }
        var first: [DomainID: any Vchan] = [:]
        for (id, _) in fixed { first[id] = try? controlServer(for: id) }
        if case .xen = transport { await refreshXenDomains() }
        onListening()
        let initial = first
        await withTaskGroup(of: Void.self) { group in
            for (id, name) in fixed {
                group.addTask { await self.serveDomain(id, name, first: initial[id]) }
            }
            group.addTask { await self.watchPolicy() }
            if case .xen = transport { group.addTask { await self.watchXenDomains() } }
        }
    }

    private func controlServer(for id: DomainID) throws(SluiceError) -> any Vchan {
        try transport.server(peer: id, port: .control, readMinimum: 131_072, writeMinimum: 131_072)
    }

    // MARK: Control channels

    /// Serves one domain's control channel, offering it again whenever it ends. A disposable's ends for good
    /// when the disposable is destroyed (its task is cancelled).
    private func serveDomain(_ id: DomainID, _ name: DomainName, first: (any Vchan)?) async {
        var offered = first
        var backoff = ReofferBackoff()
        while !Task.isCancelled {
            var opened = MonotonicClock.nanoseconds
            do throws(SluiceError) {
                let vchan: any Vchan
                if let first = offered { vchan = first } else { vchan = try controlServer(for: id) }
                offered = nil
                let channel = try VchanFrameChannel(
                    vchan: vchan, reactor: reactor, receiving: .agentToDaemon, logger: logger)
                defer {
                    // Forgetting the link and taking the calls bound to it happen at once: a call decided after
                    // this finds no link, one decided before is in the list.
                    let orphans = state.withLock { state in
                        state.links[id] = nil
                        return Array(state.inFlight.filter { $0.value.targetChannel == ObjectIdentifier(channel) }.keys)
                    }
                    channel.close()
                    if !orphans.isEmpty {
                        logger.warning(
                            "the agent of \(name) went away with \(orphans.count) calls in flight: they end with 125")
                    }
                    endWithoutTarget(orphans)
                }
                guard case .hello(let peer) = try await channel.receive() else {
                    throw SluiceError(.unsupportedVersion, "the agent did not start with hello")
                }
                _ = try Hello.current.negotiate(with: peer)
                try await channel.send(.hello(.current))
                state.withLock { $0.links[id] = channel }
                opened = MonotonicClock.nanoseconds
                logger.info("agent connected", metadata: ["domain": "\(name)"])
                onConnect(name)
                let gate = UndecidedGate(limit: configuration.maxUndecidedPerDomain)
                var rate = RequestRate(
                    perSecond: configuration.maxRequestsPerSecond, burst: configuration.maxRequestsPerSecond,
                    now: MonotonicClock.nanoseconds)
                var limited = RateLimitLog()
                while true {
                    let message = try await channel.receive()
                    switch message {
                    case .call(let request):
                        TraceMarks.mark("daemon: call")
                        let now = MonotonicClock.nanoseconds
                        guard rate.admit(now: now) else {
                            // Not audited one by one: a storm would fill the disk. Refused without waiting for the
                            // ring; a domain that does not read its refusals loses them.
                            _ = try? channel.trySend(
                                .refused(
                                    Refusal(
                                        id: request.id, code: .rateLimited,
                                        message: "over \(configuration.maxRequestsPerSecond) requests a second")))
                            if let count = limited.count(now: now) {
                                logger.warning(
                                    "refused \(count) requests from \(name) since the last such line: over its rate limit of \(configuration.maxRequestsPerSecond) a second"
                                )
                            }
                            // Then the channel is left unread for a tenth of a second: the storm fills its own ring
                            // and waits, instead of costing the daemon a decode and a refusal per request.
                            try? await Task.sleep(nanoseconds: Self.rateLimitPauseNanoseconds)
                            continue
                        }
                        await gate.enter()
                        Task {
                            defer { gate.leave() }
                            await self.handle(request, from: id, name: name, channel: channel)
                        }
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
                if Task.isCancelled { return }
                let delay = backoff.delay(afterEnding: error.code, opened: opened, ended: MonotonicClock.nanoseconds)
                logger.warning(
                    "control channel closed",
                    metadata: [
                        "domain": "\(name)", "reason": "\(error)",
                        "offered-again-in-ms": "\(delay / 1_000_000)",
                    ])
                try? await Task.sleep(nanoseconds: delay)
            }
        }
    }

    /// The id of a domain of the inventory or of a disposable that exists now.
    private func domainID(_ name: String) -> DomainID? {
        directory.id(of: name) ?? state.withLock { $0.dynamicIDs[name] }
    }

    // MARK: Calls

    private func handle(_ request: CallRequest, from source: DomainID, name: DomainName, channel: VchanFrameChannel)
        async
    {
        var record = AuditLog.Record(
            call: 0, source: name.rawValue, requestedTarget: request.target.rawValue, target: nil,
            service: request.call.service.rawValue, argument: request.call.argument.rawValue, decision: "deny")
        func refuse(_ reason: String, _ code: SluiceError.Code, _ message: String) async {
            record.reason = reason
            audit?.write(record)
            try? await channel.send(.refused(Refusal(id: request.id, code: code, message: message)))
        }
        // SERVICE+ARG counted without building it: this runs for every request.
        let size =
            request.call.service.rawValue.utf8.count + 1 + request.call.argument.rawValue.utf8.count
            + request.target.rawValue.utf8.count + (request.requestedSource?.rawValue.utf8.count ?? 0)
        guard size <= configuration.maxRequestBytes else {
            logger.notice("refused a \(size)-byte request from \(name): over \(configuration.maxRequestBytes) bytes")
            return await refuse(
                "request-too-large", .requestTooLarge,
                "the request is \(size) bytes, over the limit of \(configuration.maxRequestBytes)")
        }
        var target: String
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
                logger.info("invalid request from \(name): \(error.message)")
                return await refuse("invalid-request", .refusedByPolicy, "Request refused")
            }
            record.rule = decision.rule
            record.requestedTarget = decision.requestedTarget
            switch decision.action {
            case .deny:
                return await refuse(decision.reason?.rawValue ?? "denied", .refusedByPolicy, "Request refused")
            case .ask:
                record.decision = "ask"
                let choices = decision.targetsForAsk ?? []
                guard admitAsk(from: source) else {
                    logger.notice("refused an ask from \(name): too many questions are waiting")
                    return await refuse("too-many-asks", .tooManyAsks, "too many questions are waiting for the user")
                }
                let askAgent = askAgent
                let (service, argument) = (request.call.service.rawValue, request.call.argument.rawValue)
                let defaultTarget = decision.defaultTarget
                let answer = await OSThread.run {
                    askAgent.ask(
                        source: name.rawValue, service: service, argument: argument, targets: choices,
                        defaultTarget: defaultTarget)
                }
                releaseAsk(from: source)
                guard let chosen = answer, choices.contains(chosen) else {
                    return await refuse("denied-by-user", .refusedByPolicy, "Request refused")
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
        // Admission first, so that a domain over its limit never makes the toolstack start or create anything.
        var overLimit = ""
        let admitted: (UInt64, VchanPort)? = state.withLock { state in
            guard state.inFlight.count < configuration.maxCallsTotal else {
                overLimit = "in all (\(configuration.maxCallsTotal))"
                return nil
            }
            guard state.perDomain[source, default: 0] < configuration.maxCallsPerDomain else {
                overLimit = "from this domain (\(configuration.maxCallsPerDomain))"
                return nil
            }
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
            logger.notice("refused a call from \(name): too many calls in flight \(overLimit)")
            return await refuse("too-many-calls", .tooManyCalls, "too many calls in flight \(overLimit)")
        }
        func abandon(_ reason: String, _ code: SluiceError.Code, _ message: String) async {
            let disposable = release(call)
            if let disposable { removeDomain(disposable) }
            record.call = 0
            await refuse(reason, code, message)
        }
        if target.hasPrefix("@dispvm") {
            guard let template = disposableTemplate(target, source: name) else {
                return await abandon("no-disposable-template", .refusedByPolicy, "Request refused")
            }
            switch await createDisposable(from: template, for: name) {
            case .success(let (id, disposable)):
                target = disposable.rawValue
                record.target = target
                state.withLock {
                    $0.inFlight[call]?.disposable = id
                    $0.inFlight[call]?.record.target = target
                }
            case .failure(let error):
                logger.warning("cannot create a disposable from \(template) for \(name): \(error)")
                return await abandon("disposable-failed", error.code, "the disposable could not be created")
            }
        } else if let targetID = domainID(target), state.withLock({ $0.links[targetID] }) == nil, autostart {
            await start(target, id: targetID)
        }
        guard let targetID = domainID(target),
            let targetLink = state.withLock({ state -> VchanFrameChannel? in
                guard let link = state.links[targetID] else { return nil }
                state.inFlight[call]?.targetChannel = ObjectIdentifier(link)
                return link
            })
        else {
            return await abandon("target-not-running", .channelClosed, "the target domain is not running")
        }
        TraceMarks.mark("daemon: decided")
        // Recorded before anything is sent: a call that runs always has a line, even if the daemon dies before it ends.
        audit?.write(record, event: .decided)
        let callID = RequestID(rawValue: call)!
        // The admin domain serves every data channel it is part of; otherwise the caller serves.
        let targetServes = targetID == .admin && source != .admin
        let order = ExecOrder(
            call: callID, serviceCall: request.call, source: name, requestedTarget: request.target, user: user,
            rendezvous: Rendezvous(domain: source, port: port, role: targetServes ? .server : nil))
        do {
            // The caller serves the data channel, so it hears first: the target's agent then rarely has to retry.
            try await channel.send(
                .connect(
                    ConnectOrder(
                        id: request.id, call: callID,
                        rendezvous: Rendezvous(domain: targetID, port: port, role: targetServes ? .client : nil))))
            TraceMarks.mark("daemon: connect sent")
            do throws(SluiceError) {
                try await targetLink.send(
                    .exec(order), withinMilliseconds: configuration.controlSendTimeoutMilliseconds)
            } catch {
                if error.code == .cancelled {
                    logger.warning(
                        "\(target) has not read its control channel for \(configuration.controlSendTimeoutMilliseconds) ms: cutting it off"
                    )
                    targetLink.close()
                }
                throw error
            }
            TraceMarks.mark("daemon: exec sent")
        } catch {
            endWithoutTarget([call])
        }
    }

    /// Ends calls whose target can no longer report their end (its agent went away, or never got the order): each
    /// ends with 125 on record, and its caller's agent is told at once, so the caller does not wait out its connect
    /// timeout for a target that will never come.
    private func endWithoutTarget(_ calls: [UInt64]) {
        for call in calls {
            let callID = RequestID(rawValue: call)!
            let caller = state.withLock { state in state.inFlight[call].flatMap { state.links[$0.source] } }
            finish(CallReport(call: callID, exitCode: 125, bytesIn: 0, bytesOut: 0), reason: "target-gone")
            if let caller, (try? caller.trySend(.cancel(callID))) != true {
                Task { try? await caller.send(.cancel(callID)) }
            }
        }
    }

    private func admitAsk(from source: DomainID) -> Bool {
        state.withLock { state in
            guard state.totalAsks < configuration.maxPendingAsksTotal,
                state.asks[source, default: 0] < configuration.maxPendingAsksPerDomain
            else { return false }
            state.totalAsks += 1
            state.asks[source, default: 0] += 1
            return true
        }
    }

    private func releaseAsk(from source: DomainID) {
        state.withLock { state in
            state.totalAsks -= 1
            state.asks[source, default: 1] -= 1
        }
    }

    /// Forgets an admitted call that never ran; returns its disposable, if one was made.
    private func release(_ call: UInt64) -> DomainID? {
        state.withLock { state in
            guard let flight = state.inFlight.removeValue(forKey: call) else { return nil }
            state.ports.remove(flight.port.rawValue)
            state.perDomain[flight.source, default: 1] -= 1
            return flight.disposable
        }
    }

    /// Asks the toolstack to start a halted domain, then waits up to 10 s for its agent to connect.
    private func start(_ name: String, id: DomainID) async {
        guard let toolstack = configuration.toolstack, let domain = try? DomainName(name) else { return }
        let result = await OSThread.run { Result { () throws(SluiceError) in try toolstack.start(domain) } }
        if case .failure(let error) = result {
            logger.warning("the toolstack did not start \(name): \(error)")
            return
        }
        await waitForAgent(id)
    }

    private func waitForAgent(_ id: DomainID) async {
        let deadline = MonotonicClock.milliseconds + 10_000
        while state.withLock({ $0.links[id] }) == nil && MonotonicClock.milliseconds < deadline {
            try? await Task.sleep(nanoseconds: 5_000_000)
        }
    }

    // MARK: Disposables

    /// The template a `@dispvm` target means: `@dispvm:NAME` names it; a bare `@dispvm` (possible only from the
    /// admin domain, whose requests the policy does not resolve) is the source's default.
    private func disposableTemplate(_ target: String, source: DomainName) -> DomainName? {
        let inventory = state.withLock { $0.inventory }
        let name: String?
        if target.hasPrefix("@dispvm:") {
            name = String(target.dropFirst("@dispvm:".count))
        } else {
            name = target == "@dispvm" ? inventory.domain(named: source.rawValue)?.defaultDispVM : nil
        }
        guard let name, inventory.domain(named: name)?.templateForDispVMs == true else { return nil }
        return try? DomainName(name)
    }

    /// Has the toolstack make a disposable from `template`, serves its control channel, and waits for its agent.
    private func createDisposable(from template: DomainName, for source: DomainName) async -> Result<
        (DomainID, DomainName), SluiceError
    > {
        guard let toolstack = configuration.toolstack else {
            return .failure(SluiceError(.toolstackFailed, "no toolstack is configured"))
        }
        let made = await OSThread.run {
            Result { () throws(SluiceError) in try toolstack.createDisposable(template: template) }
        }
        guard case .success(let (name, id)) = made else { return made.map { ($0.id, $0.name) } }
        let templateDomain = state.withLock { $0.inventory.domain(named: template.rawValue) }
        let entry = Domain(
            name: name.rawValue, type: "DispVM", tags: ["created-by-\(source.rawValue)"],
            defaultDispVM: templateDomain?.defaultDispVM, powerState: "Running")
        guard addDomain(id, name, entry: entry, isDisposable: true) else {
            logger.error("the toolstack made \(name) with id \(id), which is already in use; destroying it")
            _ = await OSThread.run { Result { () throws(SluiceError) in try toolstack.destroy(name) } }
            return .failure(SluiceError(.toolstackFailed, "the toolstack reused the name or id of a domain"))
        }
        logger.info("created disposable \(name) (id \(id)) from \(template) for \(source)")
        await waitForAgent(id)
        guard state.withLock({ $0.links[id] }) != nil else {
            removeDomain(id)
            return .failure(SluiceError(.toolstackFailed, "the disposable's agent did not connect within 10 s"))
        }
        return .success((id, name))
    }

    /// Starts serving a domain that appeared (a disposable, or a domain xenstore lists) and shows it to the policy
    /// as `entry`. Returns false if its name or id is already taken.
    private func addDomain(_ id: DomainID, _ name: DomainName, entry: Domain, isDisposable: Bool) -> Bool {
        let added = state.withLock { state -> Bool in
            guard id != .admin, directory.id(of: name.rawValue) == nil || !isDisposable,
                state.dynamic[id] == nil, state.dynamicIDs[name.rawValue] == nil
            else { return false }
            state.dynamic[id] = DynamicDomain(name: name, server: nil, isDisposable: isDisposable)
            state.dynamicIDs[name.rawValue] = id
            state.inventory = Inventory(domains: state.inventory.domains.filter { $0.name != name.rawValue } + [entry])
            return true
        }
        guard added else { return false }
        policy.update(inventory: state.withLock { $0.inventory })
        let server = Task { await self.serveDomain(id, name, first: nil) }
        state.withLock { $0.dynamic[id]?.server = server }
        return true
    }

    /// Stops serving a domain that went away and forgets it; a disposable is also destroyed by the toolstack.
    private func removeDomain(_ id: DomainID) {
        guard
            let domain = state.withLock({ state -> DynamicDomain? in
                guard let domain = state.dynamic.removeValue(forKey: id) else { return nil }
                state.dynamicIDs[domain.name.rawValue] = nil
                var domains = state.inventory.domains.filter { $0.name != domain.name.rawValue }
                if let configured = configuration.inventory.domain(named: domain.name.rawValue) {
                    domains.append(configured)
                }
                state.inventory = Inventory(domains: domains)
                return domain
            })
        else { return }
        domain.server?.cancel()
        state.withLock { $0.links[id] }?.close()
        policy.update(inventory: state.withLock { $0.inventory })
        guard domain.isDisposable, let toolstack = configuration.toolstack else { return }
        let logger = logger
        Task {
            let result = await OSThread.run { Result { () throws(SluiceError) in try toolstack.destroy(domain.name) } }
            if case .failure(let error) = result {
                logger.warning("the toolstack did not destroy \(domain.name): \(error)")
            } else {
                logger.info("destroyed disposable \(domain.name)")
            }
        }
    }

    // MARK: Xen domains

    /// Adds the domains xenstore lists that the daemon does not serve yet, and removes those that went away.
    private func refreshXenDomains() async {
        let listed: [(id: DomainID, name: String)]
        switch await OSThread.run({ Result { () throws(SluiceError) in try XenStore.domains() } }) {
        case .success(let value): listed = value
        case .failure(let error):
            logger.error("cannot read the domains from xenstore: \(error)")
            return
        }
        let known = state.withLock { state in state.dynamic.filter { !$0.value.isDisposable }.mapValues(\.name) }
        var present: Set<DomainID> = [.admin]
        for (id, text) in listed where id != .admin {
            guard let name = try? DomainName(text) else {
                logger.warning("xenstore names domain \(id) '\(text)', which is not a valid domain name; ignored")
                continue
            }
            present.insert(id)
            if known[id] == name { continue }
            if known[id] != nil { removeDomain(id) }
            var entry = configuration.inventory.domain(named: name.rawValue) ?? Domain(name: name.rawValue)
            entry.powerState = "Running"
            if addDomain(id, name, entry: entry, isDisposable: false) {
                logger.notice("domain \(name) (id \(id)) appeared in xenstore")
            }
        }
        for (id, name) in known where !present.contains(id) {
            logger.notice("domain \(name) (id \(id)) went away")
            removeDomain(id)
        }
    }

    /// Reads xenstore every half second: domains appear and go away while the daemon runs.
    private func watchXenDomains() async {
        while !Task.isCancelled {
            try? await Task.sleep(nanoseconds: 500_000_000)
            await refreshXenDomains()
        }
    }

    /// Ends a call in flight: frees its slot and port, destroys its disposable and writes its `ended` line (with
    /// `reason` when the daemon ended it rather than the target's report).
    private func finish(_ report: CallReport, reason: String? = nil) {
        guard
            let flight = state.withLock({ state -> InFlight? in
                guard let flight = state.inFlight.removeValue(forKey: report.call.rawValue) else { return nil }
                state.ports.remove(flight.port.rawValue)
                state.perDomain[flight.source, default: 1] -= 1
                return flight
            })
        else {
            logger.debug("a report for call \(report.call), which is not in flight")
            return
        }
        logger.debug(
            "call \(report.call) ended (\(report.exitCode)) after \((MonotonicClock.nanoseconds - flight.started) / 1_000_000) ms"
        )
        if let disposable = flight.disposable { removeDomain(disposable) }
        var record = flight.record
        record.exitCode = Int(report.exitCode)
        if let reason { record.reason = reason }
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
