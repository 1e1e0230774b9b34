public import Logging
import SluiceLocks
public import SluiceRegistry
import SluiceSystem
public import SluiceVchan
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// `sluice-agent`: one per domain. It keeps a control channel to the admin domain's daemon (reconnecting when the
/// daemon restarts), serves the domain's local callers on a UNIX socket, and runs the calls the daemon orders.
public final class Agent: Sendable {
    public struct Configuration: Sendable {
        public var domain: DomainName
        public var domainID: DomainID
        /// The vchan transport: local (with this domain's rendezvous socket) or Xen.
        public var transport: VchanTransport.Choice
        /// Where local callers connect (`RUN_DIR/<domain>/agent.sock` under `sluice-host`).
        public var clientSocketPath: String
        public var registry: ServiceRegistry
        public var defaultUser: String?
        /// Who may call through this agent, by the kernel's credentials of the connecting process (SO_PEERCRED).
        public var callers: Callers
        /// Local callers' connections served at once; past it a connection gets `too-many-clients` (522).
        public var maxClients: Int
        /// Calls this agent runs at once (each holds a thread, a data channel and a handler); past it a call ends at
        /// once with 125 (`too-many-handlers`, 523, in the log).
        public var maxRunningCalls: Int

        public init(
            domain: DomainName, domainID: DomainID, transport: VchanTransport.Choice, clientSocketPath: String,
            registry: ServiceRegistry,
            defaultUser: String? = nil, callers: Callers = .sameUser, maxClients: Int = 256, maxRunningCalls: Int = 256
        ) {
            self.domain = domain
            self.domainID = domainID
            self.transport = transport
            self.clientSocketPath = clientSocketPath
            self.registry = registry
            self.defaultUser = defaultUser
            self.callers = callers
            self.maxClients = maxClients
            self.maxRunningCalls = maxRunningCalls
        }
    }

    /// Which local processes are this agent's domain. On the local backend a domain is a uid, so only that uid's
    /// processes (and root's, which may act for any domain: it can become any uid) may call; in a virtual machine
    /// every process is the domain, and any may.
    public enum Callers: Sendable, Hashable {
        /// Processes of the agent's own uid, and root. The socket is mode 0600.
        case sameUser
        /// Processes of these uids, and root. The socket is mode 0666; the credentials decide.
        case uids(Set<UInt32>)
        /// Any local process. The socket is mode 0666.
        case anyone

        var socketMode: UInt32 { self == .sameUser ? 0o600 : 0o666 }

        func admits(_ uid: UInt32?) -> Bool {
            switch self {
            case .anyone: return true
            case .sameUser: return uid == 0 || uid == geteuid()
            case .uids(let allowed): return uid == 0 || uid.map(allowed.contains) == true
            }
        }
    }

    public let configuration: Configuration
    private let logger: Logger
    private let transport: VchanTransport
    private let launcher: HandlerLauncher
    private let reactor: Reactor
    private let state = LockedValue(State())

    /// How many brokered calls the agent remembers for their callers: to tell a caller that its target went away, and
    /// to tell the daemon when the caller's link ends. Past it the oldest is forgotten: its caller, if it still waits,
    /// waits for its connect timeout, and the daemon learns the call's end from its target alone. The bound keeps one
    /// local caller that never closes its link from growing the agent without limit.
    public static let maxRememberedCalls = 1_024

    /// A request a local caller made through this agent, from the moment it is sent to the daemon until the daemon
    /// refuses it, says it is over, or the caller's link ends.
    struct LocalRequest {
        var link: SocketFrameLink
        /// The caller's own id for it on its link.
        var clientID: RequestID
        /// The control channel it went out on: a request belongs to that session of the daemon only.
        var channel: ObjectIdentifier
        /// The daemon's call id, once brokered (`connect`).
        var call: RequestID?
        /// Whether the daemon has been told that the caller is done with it.
        var cancelled = false
    }

    struct State {
        var channel: VchanFrameChannel?
        /// By this agent's request id (unique for the agent's life, so ids only grow on every session).
        var requests: [RequestID: LocalRequest] = [:]
        /// The brokered requests, by the daemon's call id.
        var byCall: [RequestID: RequestID] = [:]
        var running: [RequestID: RunningCall] = [:]
        var nextID: UInt64 = 1
        var clients = 0
        var refusing = 0
        /// When a refusal for being over a budget was last logged (at most one line a second).
        var lastBudgetLine: UInt64 = 0
    }

    public init(configuration: Configuration, logger: Logger) throws(SluiceError) {
        self.configuration = configuration
        self.logger = logger
        transport = try VchanTransport.open(configuration.transport)
        launcher = HandlerLauncher(
            registry: configuration.registry, defaultUser: configuration.defaultUser,
            extraEnvironment: [
                "SLUICE_DOMAIN=\(configuration.domain)", "SLUICE_AGENT_SOCKET=\(configuration.clientSocketPath)",
            ], logger: logger)
        reactor = try Reactor(logger: logger)
    }

    /// Serves forever.
    public func run() async throws(SluiceError) {
        let listener = try UnixSocket.listen(
            at: configuration.clientSocketPath, kind: .datagram, mode: configuration.callers.socketMode)
        try OSThread.start { [self] in acceptClients(listener) }
        while true {
            do {
                try await controlSession()
            } catch {
                logger.warning("control channel to the daemon ended: \(error); reconnecting")
            }
            try? await Task.sleep(nanoseconds: 100_000_000)
        }
    }

    // MARK: The control channel

    private func controlSession() async throws(SluiceError) {
        var vchan: (any Vchan)?
        while vchan == nil {
            do {
                vchan = try transport.client(server: .admin, port: .control)
            } catch {
                // Not offered yet (the daemon is starting, or re-offering after this agent's last session).
                guard error.code == .vchanNotFound || error.code == .vchanRefused else { throw error }
                try? await Task.sleep(nanoseconds: 50_000_000)
            }
        }
        let channel = try VchanFrameChannel(vchan: vchan!, reactor: reactor, receiving: .daemonToAgent, logger: logger)
        defer {
            state.withLock { $0.channel = nil }
            channel.close()
            failPending(on: ObjectIdentifier(channel), SluiceError(.channelClosed, "the daemon is unavailable"))
        }
        // Local callers may use the channel as soon as hello is on its way: their requests follow it in order, and
        // the daemon reads none before it (a failed handshake refuses them). So a caller that the host's "ready"
        // let in never meets an agent that is still between its hello and the daemon's.
        try channel.post(.hello(.current))
        state.withLock { $0.channel = channel }
        guard case .hello(let peer) = try await channel.receive() else {
            throw SluiceError(.unsupportedVersion, "the daemon did not start with hello")
        }
        _ = try Hello.current.negotiate(with: peer)
        logger.info("connected to the daemon", metadata: ["domain": "\(configuration.domain)"])
        while true {
            switch try await channel.receive() {
            case .exec(let order):
                TraceMarks.mark("agent: exec")
                startCall(order, channel: channel)
            case .connect(let order):
                TraceMarks.mark("agent: connect")
                let request = state.withLock { state -> LocalRequest? in
                    guard var request = state.requests[order.id], request.call == nil else { return nil }
                    if state.byCall.count >= Self.maxRememberedCalls, let oldest = state.byCall.values.min() {
                        if let call = state.requests.removeValue(forKey: oldest)?.call { state.byCall[call] = nil }
                    }
                    request.call = order.call
                    state.requests[order.id] = request
                    state.byCall[order.call] = order.id
                    return request
                }
                if let request {
                    try? request.link.send(
                        .connect(ConnectOrder(id: request.clientID, call: order.call, rendezvous: order.rendezvous)))
                }
            case .refused(let refusal):
                if let request = state.withLock({ $0.requests.removeValue(forKey: refusal.id) }) {
                    try? request.link.send(
                        .refused(Refusal(id: request.clientID, code: refusal.code, message: refusal.message)))
                }
            case .cancel(let call):
                // The call is over: stop its handler if it runs here, tell its caller if it asked from here.
                let (running, request) = state.withLock { state -> (RunningCall?, LocalRequest?) in
                    let request = state.byCall.removeValue(forKey: call).flatMap {
                        state.requests.removeValue(forKey: $0)
                    }
                    return (state.running[call], request)
                }
                running?.cancel()
                if let request {
                    try? request.link.send(
                        .refused(
                            Refusal(
                                id: request.clientID, code: .channelClosed,
                                message: "the call ended at its target before it reached this caller")))
                }
            case .ping(let nonce): try channel.post(.pong(nonce))
            case .error(let report): logger.warning("the daemon reported \(report.code.name): \(report.message)")
            default: break
            }
        }
    }

    /// Refuses the requests still waiting for the daemon's word on `channel` (it ended): they will never hear.
    /// Brokered calls go on: their data channels do not need the daemon.
    private func failPending(on channel: ObjectIdentifier, _ error: SluiceError) {
        let pending = state.withLock { state in
            let ids = state.requests.filter { $0.value.channel == channel && $0.value.call == nil }.keys
            return ids.compactMap { state.requests.removeValue(forKey: $0) }
        }
        for request in pending {
            try? request.link.send(.refused(Refusal(id: request.clientID, code: error.code, message: error.message)))
        }
    }

    private func startCall(_ order: ExecOrder, channel: VchanFrameChannel) {
        let inAdminDomain = configuration.domainID == .admin
        let control = RunningCall()
        let admitted = state.withLock { state -> Bool in
            guard state.running.count < configuration.maxRunningCalls else { return false }
            state.running[order.call] = control
            return true
        }
        guard admitted else {
            // Over the thread budget: the call ends at once (the daemon tells its caller), nothing is started.
            overBudget(
                SluiceError(
                    .tooManyHandlers,
                    "call \(order.call) from \(order.source) refused: \(configuration.maxRunningCalls) calls already run here"
                ))
            _ = try? channel.post(.done(CallReport(call: order.call, exitCode: 125, bytesIn: 0, bytesOut: 0)))
            return
        }
        do {
            try OSThread.start { [self] in
                let report = ServiceSide.run(
                    order, inAdminDomain: inAdminDomain, transport: transport, launcher: launcher, control: control,
                    logger: logger)
                state.withLock { $0.running[order.call] = nil }
                _ = try? channel.post(.done(report))
            }
        } catch {
            // The call cannot run here: the daemon hears at once, so its caller's slot is not held.
            logger.error("cannot start a thread for call \(order.call): \(error)")
            state.withLock { $0.running[order.call] = nil }
            _ = try? channel.post(.done(CallReport(call: order.call, exitCode: 125, bytesIn: 0, bytesOut: 0)))
        }
    }

    // MARK: Local callers

    /// Logs a refusal for being over a budget, at most once a second.
    private func overBudget(_ error: SluiceError) {
        let now = MonotonicClock.nanoseconds
        let log = state.withLock { state -> Bool in
            guard now >= state.lastBudgetLine + 1_000_000_000 else { return false }
            state.lastBudgetLine = now
            return true
        }
        if log { logger.warning("\(error) (further refusals within a second are not logged)") }
    }

    private func acceptClients(_ listener: FileDescriptor) {
        while true {
            guard let connection = try? UnixSocket.accept(listener) else {
                usleep(10_000)
                continue
            }
            let socket = DatagramSocket(descriptor: connection)
            // Who is calling is the kernel's word (SO_PEERCRED), never the caller's.
            let uid = (try? UnixSocket.peerCredentials(connection))?.uid
            guard configuration.callers.admits(uid) else {
                logger.warning(
                    "refused a local caller of uid \(uid.map(String.init) ?? "?"): it is not of domain \(configuration.domain)"
                )
                refuse(
                    socket,
                    SluiceError(
                        .wrongUID, "uid \(uid.map(String.init) ?? "?") may not call as domain \(configuration.domain)"))
                continue
            }
            let admitted = state.withLock { state -> Bool in
                guard state.clients < configuration.maxClients else { return false }
                state.clients += 1
                return true
            }
            guard admitted else {
                let error = SluiceError(
                    .tooManyClients, "this agent already serves \(configuration.maxClients) local callers")
                overBudget(error)
                refuse(socket, error)
                continue
            }
            do {
                try OSThread.start { [self] in
                    defer { state.withLock { $0.clients -= 1 } }
                    serveClient(socket)
                }
            } catch {
                state.withLock { $0.clients -= 1 }
                refuse(socket, error)
            }
        }
    }

    /// Refusals being answered at once; past it a refused connection is closed without a reason.
    static let maxPendingRefusals = 16

    /// Answers a connection the agent will not serve with an `error` frame saying why, and closes it. The caller's
    /// first frames are read first (for up to half a second, on a thread of its own so the accept loop never waits),
    /// so that closing leaves nothing unread and the caller gets the reason rather than a reset connection.
    private func refuse(_ socket: DatagramSocket, _ error: SluiceError) {
        let admitted = state.withLock { state -> Bool in
            guard state.refusing < Self.maxPendingRefusals else { return false }
            state.refusing += 1
            return true
        }
        guard admitted,
            (try? OSThread.start { [self] in
                defer { state.withLock { $0.refusing -= 1 } }
                let link = SocketFrameLink(socket: socket, receiving: .clientToAgent)
                while (try? Readiness.wait(socket.descriptor, timeoutMilliseconds: 500).first) == true,
                    (try? link.receive()) != nil,
                    (try? Readiness.wait(socket.descriptor, timeoutMilliseconds: 0).first) == true
                {}
                try? link.send(.error(ErrorReport(error)))
                socket.descriptor.close()
            }) != nil
        else {
            if admitted { state.withLock { $0.refusing -= 1 } }
            socket.descriptor.close()
            return
        }
    }

    private func serveClient(_ socket: DatagramSocket) {
        defer { socket.descriptor.close() }
        let link = SocketFrameLink(socket: socket, receiving: .clientToAgent)
        /// The caller's request ids on this link, mapped to this agent's.
        var mine: [RequestID: RequestID] = [:]
        defer {
            // The caller is done with whatever it asked for: the daemon hears it for each request still open on the
            // session it went out on (a brokered call then ends even if its target never reports).
            let (channel, ended) = state.withLock { state -> (VchanFrameChannel?, [(RequestID, LocalRequest)]) in
                let ended = mine.values.compactMap { id in state.requests.removeValue(forKey: id).map { (id, $0) } }
                for (_, request) in ended { if let call = request.call { state.byCall[call] = nil } }
                return (state.channel, ended)
            }
            if let channel {
                for (id, request) in ended where !request.cancelled && request.channel == ObjectIdentifier(channel) {
                    _ = try? channel.post(.cancel(id))
                }
            }
        }
        do throws(SluiceError) {
            guard case .hello(let peer)? = try link.receive() else { return }
            _ = try Hello.current.negotiate(with: peer)
            try link.send(.hello(.current))
            while let message = try link.receive() {
                switch message {
                case .call(let request):
                    TraceMarks.mark("agent: call from client")
                    guard mine[request.id] == nil || state.withLock({ $0.requests[mine[request.id]!] == nil }) else {
                        throw SluiceError(.outOfOrder, "request \(request.id) is still open on this link")
                    }
                    let (id, channel) = state.withLock { state -> (RequestID, VchanFrameChannel?) in
                        let id = RequestID(rawValue: state.nextID)!
                        state.nextID += 1
                        if let channel = state.channel {
                            state.requests[id] = LocalRequest(
                                link: link, clientID: request.id, channel: ObjectIdentifier(channel))
                        }
                        return (id, state.channel)
                    }
                    mine[request.id] = id
                    guard let channel else {
                        try link.send(
                            .refused(
                                Refusal(id: request.id, code: .channelClosed, message: "the daemon is unavailable")))
                        continue
                    }
                    // In order behind everything sent before it, from this thread, without entering async code.
                    do {
                        try channel.post(
                            .call(
                                CallRequest(
                                    id: id, call: request.call, target: request.target,
                                    requestedSource: request.requestedSource)))
                    } catch {
                        _ = state.withLock { $0.requests.removeValue(forKey: id) }
                        try link.send(.refused(Refusal(id: request.id, code: error.code, message: error.message)))
                    }
                case .cancel(let clientID):
                    guard let id = mine[clientID] else { continue }
                    let channel = state.withLock { state -> VchanFrameChannel? in
                        guard var request = state.requests[id], !request.cancelled, let channel = state.channel,
                            request.channel == ObjectIdentifier(channel)
                        else { return nil }
                        request.cancelled = true
                        state.requests[id] = request
                        return channel
                    }
                    _ = try? channel?.post(.cancel(id))
                case .ping(let nonce):
                    try link.send(.pong(nonce))
                default:
                    try link.send(
                        .error(ErrorReport(code: .wrongDirection, message: "unexpected \(message.kind.rawValue)")))
                    return
                }
            }
        } catch {
            logger.info("a local caller's channel ended: \(error)")
            try? link.send(.error(ErrorReport(error)))
        }
    }
}
