public import Logging
import SluiceLocks
import SluiceSystem
public import SluiceWire
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The local backend's stand-in for XenStore and the grant table: it introduces vchan servers to their clients.
///
/// Each domain gets its own listening socket, `DIRECTORY/<domid>.sock` (mode 0600). A connection's domain is
/// the socket it came through, never anything it says, and when a domain has a uid, a connection whose kernel
/// peer credential (SO_PEERCRED) has another uid is refused and closed. A server registers `(peer, port)` with
/// the shared memory and event descriptors; only a connection of domain `peer` can take them, once. A domain
/// that asks for another domain's vchan gets `vchan-refused`, and the broker logs who tried.
///
/// Every descriptor a peer passes is checked for what it must be before the broker keeps it (`VchanDescriptors`), and
/// what one domain may hold is bounded (`Limits`): a domain over its share is refused with `broker-full` (520) and a
/// log line naming it, and the other domains keep their vchans.
///
/// The broker runs on its own thread until `stop()`. See docs/vchan.md.
public final class LocalVchanBroker: Sendable {
    public struct Domain: Sendable, Hashable {
        public var id: DomainID
        /// When set, only processes with this uid (or root, which may act for any domain: it can become any uid) may
        /// use the domain's rendezvous socket; any other is refused with `wrong-uid` (519).
        public var uid: UInt32?

        public init(id: DomainID, uid: UInt32? = nil) {
            self.id = id
            self.uid = uid
        }
    }

    /// What the broker holds for one domain, and in all. A registration holds four descriptors (a memfd, two eventfds,
    /// a socket) until its client connects; a connection holds one.
    public struct Limits: Sendable, Hashable {
        public var connectionsPerDomain: Int
        public var connectionsTotal: Int
        public var registrationsPerDomain: Int
        public var registrationsTotal: Int

        public init(
            connectionsPerDomain: Int = 256, connectionsTotal: Int = 4_096, registrationsPerDomain: Int = 512,
            registrationsTotal: Int? = nil
        ) {
            self.connectionsPerDomain = connectionsPerDomain
            self.connectionsTotal = connectionsTotal
            self.registrationsPerDomain = registrationsPerDomain
            // Sized to this process's descriptor limit, leaving a quarter for everything else: a broker that runs out
            // of descriptors fails every domain, not just the one that took them.
            self.registrationsTotal =
                registrationsTotal
                ?? max(64, min(16_384, ProcessDescriptors.limit * 3 / 4 / (RendezvousRequest.descriptorCount + 1)))
        }
    }

    public let directory: String
    private let logger: Logger
    private let wakeup: EventNotifier
    private let flags = Flags()

    private final class Flags: Sendable {
        let stop = Atomic<Bool>(false)
        let done = Atomic<Bool>(false)
        /// Domains that appeared or went away since the broker thread last looked (disposables).
        let changes = LockedValue<[Change]>([])
    }

    enum Change: Sendable {
        case add(LocalVchanBroker.Domain, FileDescriptor)
        case remove(DomainID)
    }

    public let limits: Limits

    public init(directory: String, domains: [Domain], limits: Limits = Limits(), logger: Logger) throws(SluiceError) {
        self.directory = directory
        self.logger = logger
        self.limits = limits
        let state = try BrokerState(directory: directory, domains: domains, limits: limits, logger: logger)
        wakeup = try EventNotifier.create()
        try state.epoll.add(wakeup.descriptor, token: BrokerState.wakeToken)
        let wake = wakeup
        let flags = flags
        try OSThread.start {
            state.run(
                until: { flags.stop.load(ordering: .acquiring) },
                changes: {
                    flags.changes.withLock { list in
                        defer { list.removeAll() }
                        return list
                    }
                })
            state.shutdown()
            wake.descriptor.close()
            flags.done.store(true, ordering: .releasing)
        }
    }

    /// The rendezvous socket of domain `id`.
    public func socketPath(for id: DomainID) -> String { "\(directory)/\(id.rawValue).sock" }

    /// Adds a domain that appeared while the broker runs (a disposable): its rendezvous socket exists when this
    /// returns, so its agent can connect at once.
    public func add(_ domain: Domain) throws(SluiceError) {
        let path = socketPath(for: domain.id)
        let listener = try UnixSocket.listen(at: path, kind: .datagram, mode: 0o600)
        if let uid = domain.uid { _ = chown(path, uid, UInt32.max) }
        flags.changes.withLock { $0.append(.add(domain, listener)) }
        wakeup.signal()
    }

    /// Removes a domain that went away: its socket, its connections, and every vchan offered by or to it.
    public func remove(_ id: DomainID) {
        flags.changes.withLock { $0.append(.remove(id)) }
        wakeup.signal()
    }

    /// Stops the broker, closes every connection and listing, and removes the sockets. Existing vchans keep working.
    public func stop() {
        guard !flags.stop.exchange(true, ordering: .acquiringAndReleasing) else { return }
        wakeup.signal()
        while !flags.done.load(ordering: .acquiring) { usleep(1_000) }
    }

    deinit { stop() }
}

/// Everything the broker thread owns. Only that thread touches it.
private final class BrokerState: @unchecked Sendable {
    static let wakeToken: UInt64 = 0
    static let listenerBit: UInt64 = 1 << 40

    struct Key: Hashable {
        var server: DomainID
        var peer: DomainID
        var port: VchanPort
    }

    struct Listing {
        var descriptors: [FileDescriptor]
        var connection: UInt64
    }

    struct Connection {
        var descriptor: FileDescriptor
        var domain: DomainID
        /// Set for a connection refused at accept: its first request is answered with this code, then it is closed
        /// (reading the request first, so that closing leaves nothing unread and the client gets the reason rather
        /// than a reset connection).
        var refusal: SluiceError.Code?
    }

    /// Refused connections waiting for their first request; past it a refused connection is closed at once.
    static let maxPendingRefusals = 64

    let epoll: Epoll
    let logger: Logger
    let limits: LocalVchanBroker.Limits
    var listeners: [DomainID: (descriptor: FileDescriptor, path: String, uid: UInt32?)] = [:]
    var connections: [UInt64: Connection] = [:]
    var listings: [Key: Listing] = [:]
    var nextConnection: UInt64 = 1
    /// Connections and registrations held per domain (registrations counted by the domain that made them).
    var connectionCount: [DomainID: Int] = [:]
    var registrationCount: [DomainID: Int] = [:]
    /// When each domain was last logged as over its share (at most one line a second each).
    var lastRefusalLine: [DomainID: UInt64] = [:]
    /// A descriptor kept in reserve, given up for a moment to accept and refuse a connection when the broker has run
    /// out of descriptors (else the listening socket would stay readable and the thread would spin).
    var reserve: FileDescriptor?

    let directory: String

    init(directory: String, domains: [LocalVchanBroker.Domain], limits: LocalVchanBroker.Limits, logger: Logger)
        throws(SluiceError)
    {
        epoll = try Epoll()
        self.directory = directory
        self.logger = logger
        self.limits = limits
        reserve = Self.openReserve()
        for domain in domains {
            let path = "\(directory)/\(domain.id.rawValue).sock"
            let listener = try UnixSocket.listen(at: path, kind: .datagram, mode: 0o600)
            if let uid = domain.uid { _ = chown(path, uid, UInt32.max) }
            listeners[domain.id] = (listener, path, domain.uid)
            try epoll.add(listener, token: Self.listenerBit | UInt64(domain.id.rawValue))
        }
    }

    func run(until stop: () -> Bool, changes: () -> [LocalVchanBroker.Change]) {
        while !stop() {
            for change in changes() { apply(change) }
            let events: [Epoll.Event]
            do {
                events = try epoll.wait(timeoutMilliseconds: -1)
            } catch {
                logger.error("vchan broker: \(error)")
                return
            }
            for event in events {
                if event.token == Self.wakeToken { continue }
                if event.token & Self.listenerBit != 0 {
                    accept(DomainID(rawValue: UInt16(truncatingIfNeeded: event.token)) ?? .admin)
                } else {
                    serve(event.token, hangUp: event.hangUp && !event.readable)
                }
            }
        }
    }

    static func openReserve() -> FileDescriptor? {
        let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
        return fd >= 0 ? FileDescriptor(rawValue: fd) : nil
    }

    private func accept(_ domain: DomainID) {
        guard let listener = listeners[domain] else { return }
        let connection: FileDescriptor
        do throws(UnixSocket.AcceptFailure) {
            connection = try UnixSocket.acceptTelling(listener.descriptor)
        } catch {
            guard case .outOfDescriptors = error else { return }
            guard let spare = reserve else {
                // No reserve to give up: wait a moment rather than spin on a listener that stays readable.
                usleep(10_000)
                reserve = Self.openReserve()
                return
            }
            // Out of descriptors: accept with the reserve's slot, say so, close, and take the reserve back.
            spare.close()
            reserve = nil
            if let refused = try? UnixSocket.accept(listener.descriptor) {
                refuse(refused, .brokerFull, domain: domain, "the broker has no descriptors left")
            }
            reserve = Self.openReserve()
            return
        }
        let peerUID = (try? UnixSocket.peerCredentials(connection))?.uid
        if let uid = listener.uid, peerUID != uid, peerUID != 0 {
            logger.warning(
                "vchan broker: refused a process of uid \(peerUID.map(String.init) ?? "?") on domain \(domain)'s rendezvous socket (uid \(uid) only)"
            )
            refuse(connection, .wrongUID, domain: domain, nil)
            return
        }
        guard connectionCount.values.reduce(0, +) < limits.connectionsTotal else {
            refuse(
                connection, .brokerFull, domain: domain,
                "the broker holds its maximum of \(limits.connectionsTotal) connections in all")
            return
        }
        guard connectionCount[domain, default: 0] < limits.connectionsPerDomain else {
            refuse(
                connection, .brokerFull, domain: domain,
                "domain \(domain) holds its maximum of \(limits.connectionsPerDomain) connections")
            return
        }
        let token = nextConnection
        nextConnection += 1
        do {
            try epoll.add(connection, token: token)
        } catch {
            connection.close()
            return
        }
        connections[token] = Connection(descriptor: connection, domain: domain, refusal: nil)
        connectionCount[domain, default: 0] += 1
    }

    /// Refuses a connection: its first request is answered with `code`, then it is closed (at once, without a
    /// reason, when too many refusals already wait). `why`, when given, is logged at most once a second per domain.
    private func refuse(_ connection: FileDescriptor, _ code: SluiceError.Code, domain: DomainID, _ why: String?) {
        if let why { logOverShare(domain, why) }
        let pending = connections.values.count { $0.refusal != nil }
        guard pending < Self.maxPendingRefusals else {
            connection.close()
            return
        }
        let token = nextConnection
        nextConnection += 1
        do {
            try epoll.add(connection, token: token)
        } catch {
            connection.close()
            return
        }
        connections[token] = Connection(descriptor: connection, domain: domain, refusal: code)
    }

    private func logOverShare(_ domain: DomainID, _ why: String) {
        let now = MonotonicClock.nanoseconds
        guard now >= lastRefusalLine[domain, default: 0] + 1_000_000_000 || lastRefusalLine[domain] == nil else {
            return
        }
        lastRefusalLine[domain] = now
        logger.warning(
            "vchan broker: refused domain \(domain): \(why) (broker-full; further refusals within a second are not logged)"
        )
    }

    private func serve(_ token: UInt64, hangUp: Bool) {
        guard let connection = connections[token] else { return }
        let socket = DatagramSocket(descriptor: connection.descriptor)
        guard !hangUp, let message = try? socket.receive(maxBytes: 64) else {
            drop(token)
            return
        }
        if let refusal = connection.refusal {
            for descriptor in message.descriptors { descriptor.close() }
            try? socket.send(RendezvousRequest.reply(refusal))
            drop(token)
            return
        }
        guard let (operation, domain, port) = RendezvousRequest.decode(message.bytes) else {
            logger.warning("vchan broker: domain \(connection.domain) sent a malformed request; closing its connection")
            for descriptor in message.descriptors { descriptor.close() }
            drop(token)
            return
        }
        let reply: SluiceError.Code?
        var outgoing: [FileDescriptor] = []
        switch operation {
        case .register:
            let key = Key(server: connection.domain, peer: domain, port: port)
            var refusal: SluiceError?
            do throws(SluiceError) {
                try VchanDescriptors.validate(message.descriptors)
            } catch {
                refusal = error
            }
            if let refusal {
                logger.warning(
                    "vchan broker: domain \(connection.domain) offered a vchan with bad descriptors: \(refusal.message)"
                )
                reply = refusal.code
            } else if listings[key] != nil {
                reply = .vchanPortInUse
            } else if listings.count >= limits.registrationsTotal {
                logOverShare(
                    connection.domain,
                    "the broker holds its maximum of \(limits.registrationsTotal) vchans offered in all")
                reply = .brokerFull
            } else if registrationCount[connection.domain, default: 0] >= limits.registrationsPerDomain {
                logOverShare(
                    connection.domain,
                    "domain \(connection.domain) holds its maximum of \(limits.registrationsPerDomain) vchans offered and not yet connected"
                )
                reply = .brokerFull
            } else {
                listings[key] = Listing(descriptors: message.descriptors, connection: token)
                registrationCount[connection.domain, default: 0] += 1
                reply = nil
            }
            if reply != nil { for descriptor in message.descriptors { descriptor.close() } }
        case .connect:
            for descriptor in message.descriptors { descriptor.close() }
            let key = Key(server: domain, peer: connection.domain, port: port)
            if let listing = listings.removeValue(forKey: key) {
                forget(key)
                outgoing = listing.descriptors
                reply = nil
            } else if let other = listings.keys.first(where: { $0.server == domain && $0.port == port }) {
                logger.warning(
                    "vchan broker: domain \(connection.domain) asked for domain \(domain)'s vchan on port \(port), which is reserved for domain \(other.peer); refused"
                )
                reply = .vchanRefused
            } else {
                reply = .vchanNotFound
            }
        case .unregister:
            for descriptor in message.descriptors { descriptor.close() }
            let key = Key(server: connection.domain, peer: domain, port: port)
            if let listing = listings.removeValue(forKey: key) {
                forget(key)
                for descriptor in listing.descriptors { descriptor.close() }
            }
            reply = nil
        }
        do {
            try socket.send(RendezvousRequest.reply(reply), descriptors: outgoing)
        } catch {
            drop(token)
        }
        for descriptor in outgoing { descriptor.close() }
    }

    private func apply(_ change: LocalVchanBroker.Change) {
        switch change {
        case .add(let domain, let listener):
            if let old = listeners.removeValue(forKey: domain.id) { old.descriptor.close() }
            let path = "\(directory)/\(domain.id.rawValue).sock"
            do {
                try epoll.add(listener, token: Self.listenerBit | UInt64(domain.id.rawValue))
                listeners[domain.id] = (listener, path, domain.uid)
            } catch {
                logger.error("vchan broker: cannot watch domain \(domain.id)'s socket: \(error)")
                listener.close()
            }
        case .remove(let id):
            if let listener = listeners.removeValue(forKey: id) {
                epoll.remove(listener.descriptor)
                listener.descriptor.close()
                unlink(listener.path)
            }
            for (token, connection) in connections where connection.domain == id { drop(token) }
            for (key, listing) in listings where key.server == id || key.peer == id {
                for descriptor in listing.descriptors { descriptor.close() }
                listings.removeValue(forKey: key)
                forget(key)
            }
            connectionCount[id] = nil
            registrationCount[id] = nil
            lastRefusalLine[id] = nil
        }
    }

    /// Forgets a connection and every listing it made: a server that went away before its client came.
    private func drop(_ token: UInt64) {
        guard let connection = connections.removeValue(forKey: token) else { return }
        epoll.remove(connection.descriptor)
        connection.descriptor.close()
        if connection.refusal == nil { connectionCount[connection.domain, default: 1] -= 1 }
        for (key, listing) in listings where listing.connection == token {
            for descriptor in listing.descriptors { descriptor.close() }
            listings.removeValue(forKey: key)
            forget(key)
        }
    }

    /// A registration that ended (connected, withdrawn, dropped): its domain holds one fewer.
    private func forget(_ key: Key) {
        registrationCount[key.server, default: 1] -= 1
        if registrationCount[key.server] == 0 { registrationCount[key.server] = nil }
    }

    func shutdown() {
        reserve?.close()
        for token in Array(connections.keys) { drop(token) }
        for listing in listings.values {
            for descriptor in listing.descriptors { descriptor.close() }
        }
        listings.removeAll()
        for listener in listeners.values {
            listener.descriptor.close()
            unlink(listener.path)
        }
        epoll.close()
    }
}
