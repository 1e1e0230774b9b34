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

        public init(
            domain: DomainName, domainID: DomainID, transport: VchanTransport.Choice, clientSocketPath: String,
            registry: ServiceRegistry,
            defaultUser: String? = nil
        ) {
            self.domain = domain
            self.domainID = domainID
            self.transport = transport
            self.clientSocketPath = clientSocketPath
            self.registry = registry
            self.defaultUser = defaultUser
        }
    }

    public let configuration: Configuration
    private let logger: Logger
    private let transport: VchanTransport
    private let launcher: HandlerLauncher
    private let reactor: Reactor
    private let state = LockedValue(State())

    struct Pending {
        var link: SocketFrameLink
        var clientID: RequestID
    }

    /// How many brokered calls the agent remembers to tell their callers that the target went away. A caller whose
    /// call was forgotten (a link that made more calls than this and stays open) waits for its connect timeout
    /// instead; the bound keeps one local caller from growing the agent without limit.
    public static let maxRememberedCalls = 1_024

    /// A call a local caller asked for that the daemon has brokered (`connect` relayed), by the daemon's call id.
    struct Brokered {
        /// This agent's id for the request, as in `pending`.
        var requestID: RequestID
        var caller: Pending
    }

    struct State {
        var channel: VchanFrameChannel?
        var pending: [RequestID: Pending] = [:]
        /// Kept until the caller's link ends: if the daemon says the call is over before the target connected (its
        /// agent went away), the caller hears it at once instead of at its connect timeout.
        var brokered: [RequestID: Brokered] = [:]
        var running: [RequestID: HandlerPump] = [:]
        var nextID: UInt64 = 1
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
        let listener = try UnixSocket.listen(at: configuration.clientSocketPath, kind: .datagram, mode: 0o666)
        try OSThread.start { [self] in acceptClients(listener) }
        while true {
            do {
                try await controlSession()
            } catch {
                logger.warning("control channel to the daemon ended: \(error); reconnecting")
            }
            failPending(SluiceError(.channelClosed, "the daemon is unavailable"))
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
        }
        try await channel.send(.hello(.current))
        guard case .hello(let peer) = try await channel.receive() else {
            throw SluiceError(.unsupportedVersion, "the daemon did not start with hello")
        }
        _ = try Hello.current.negotiate(with: peer)
        state.withLock { $0.channel = channel }
        logger.info("connected to the daemon", metadata: ["domain": "\(configuration.domain)"])
        while true {
            switch try await channel.receive() {
            case .exec(let order):
                TraceMarks.mark("agent: exec")
                startCall(order, channel: channel)
            case .connect(let order):
                TraceMarks.mark("agent: connect")
                let caller = state.withLock { state -> Pending? in
                    guard let caller = state.pending.removeValue(forKey: order.id) else { return nil }
                    // The oldest call: the daemon's ids only grow.
                    if state.brokered.count >= Self.maxRememberedCalls, let oldest = state.brokered.keys.min() {
                        state.brokered[oldest] = nil
                    }
                    state.brokered[order.call] = Brokered(requestID: order.id, caller: caller)
                    return caller
                }
                if let caller {
                    try? caller.link.send(
                        .connect(ConnectOrder(id: caller.clientID, call: order.call, rendezvous: order.rendezvous)))
                }
            case .refused(let refusal):
                relay(refusal.id) { .refused(Refusal(id: $0, code: refusal.code, message: refusal.message)) }
            case .cancel(let call):
                // The call is over: stop its handler if it runs here, tell its caller if it asked from here.
                let (pump, brokered) = state.withLock { ($0.running[call], $0.brokered.removeValue(forKey: call)) }
                pump?.cancel()
                if let brokered {
                    try? brokered.caller.link.send(
                        .refused(
                            Refusal(
                                id: brokered.caller.clientID, code: .channelClosed,
                                message: "the target's agent went away")))
                }
            case .ping(let nonce): try await channel.send(.pong(nonce))
            case .error(let report): logger.warning("the daemon reported \(report.code.name): \(report.message)")
            default: break
            }
        }
    }

    private func relay(_ id: RequestID, _ message: (RequestID) -> Message) {
        guard let pending = state.withLock({ $0.pending.removeValue(forKey: id) }) else { return }
        try? pending.link.send(message(pending.clientID))
    }

    private func failPending(_ error: SluiceError) {
        let pending = state.withLock { state in
            defer { state.pending.removeAll() }
            return Array(state.pending.values)
        }
        for entry in pending {
            try? entry.link.send(.refused(Refusal(id: entry.clientID, code: error.code, message: error.message)))
        }
    }

    private func startCall(_ order: ExecOrder, channel: VchanFrameChannel) {
        let inAdminDomain = configuration.domainID == .admin
        do {
            try OSThread.start { [self] in
                let report = ServiceSide.run(
                    order, inAdminDomain: inAdminDomain, transport: transport, launcher: launcher,
                    register: { pump in state.withLock { $0.running[order.call] = pump } }, logger: logger)
                state.withLock { $0.running[order.call] = nil }
                Task { try? await channel.send(.done(report)) }
            }
        } catch {
            logger.error("cannot start a thread for call \(order.call): \(error)")
        }
    }

    // MARK: Local callers

    private func acceptClients(_ listener: FileDescriptor) {
        while true {
            guard let connection = try? UnixSocket.accept(listener) else {
                usleep(10_000)
                continue
            }
            do {
                try OSThread.start { [self] in serveClient(DatagramSocket(descriptor: connection)) }
            } catch {
                connection.close()
            }
        }
    }

    private func serveClient(_ socket: DatagramSocket) {
        defer { socket.descriptor.close() }
        let link = SocketFrameLink(socket: socket, receiving: .clientToAgent)
        var mine: [RequestID: RequestID] = [:]
        defer {
            state.withLock { state in
                for id in mine.values { state.pending[id] = nil }
                let ids = Set(mine.values)
                state.brokered = state.brokered.filter { !ids.contains($0.value.requestID) }
            }
        }
        do {
            guard case .hello(let peer)? = try link.receive() else { return }
            _ = try Hello.current.negotiate(with: peer)
            try link.send(.hello(.current))
            while let message = try link.receive() {
                switch message {
                case .call(let request):
                    TraceMarks.mark("agent: call from client")
                    let (id, channel) = state.withLock { state -> (RequestID, VchanFrameChannel?) in
                        let id = RequestID(rawValue: state.nextID)!
                        state.nextID += 1
                        state.pending[id] = Pending(link: link, clientID: request.id)
                        return (id, state.channel)
                    }
                    mine[request.id] = id
                    guard let channel else {
                        relay(id) {
                            .refused(Refusal(id: $0, code: .channelClosed, message: "the daemon is unavailable"))
                        }
                        continue
                    }
                    let forwarded = CallRequest(
                        id: id, call: request.call, target: request.target, requestedSource: request.requestedSource)
                    // Straight onto the ring from this thread when it has room: no hop into async code.
                    if (try? channel.trySend(.call(forwarded))) != true {
                        Task { try? await channel.send(.call(forwarded)) }
                    }
                case .cancel(let clientID):
                    if let id = mine[clientID], let channel = state.withLock({ $0.channel }),
                        (try? channel.trySend(.cancel(id))) != true
                    {
                        Task { try? await channel.send(.cancel(id)) }
                    }
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
