public import Logging
public import SluiceCalls
public import SluicePolicy
import SluiceSystem
public import SluiceVchan
public import SluiceWire

/// `sluiced`: the admin domain's broker, as composition of its parts (docs/architecture.md, "The daemon"):
///
/// - `ControlChannels`: one control channel per domain, offered again after a backoff whenever it ends;
/// - `CallBroker` and its `CallTable`: every call's state and who may move it on, the limits, the deadlines;
/// - `PolicyVerdicts` and `PolicyWatcher`: the policy's decisions, reloaded when its files change;
/// - `DomainRoster`: the domains served and shown to the policy, with `Disposables` and (on Xen) `XenDomains`;
/// - `AuditLog`: one line per decision and per ended call.
///
/// Identity comes from the channel a message arrived on, never from the message: a domain's session is the vchan the
/// transport gave it.
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
        /// Every limit on calls, and the control channels' send timeout (`CallLimits`, docs/calls.md).
        public var limits: CallLimits

        public init(
            inventory: Inventory, policyDirectories: [String],
            compatDirectory: String = PolicyLoader.defaultCompatDirectory,
            transport: VchanTransport.Choice, auditLogPath: String? = nil, toolstack: (any Toolstack)? = nil,
            limits: CallLimits = CallLimits()
        ) {
            self.inventory = inventory
            self.policyDirectories = policyDirectories
            self.compatDirectory = compatDirectory
            self.transport = transport
            self.auditLogPath = auditLogPath
            self.toolstack = toolstack
            self.limits = limits
        }
    }

    public let configuration: Configuration
    public let roster: DomainRoster
    public let policy: PolicyStore
    private let channels: ControlChannels
    private let broker: CallBroker
    private let watcher: PolicyWatcher
    private let xenDomains: XenDomains?
    private let transport: VchanTransport

    public init(
        configuration: Configuration, askAgent: any AskAgent, logger: Logger,
        onConnect: @escaping @Sendable (DomainName) -> Void = { _ in }
    ) throws(SluiceError) {
        self.configuration = configuration
        let policy = PolicyStore(state: .unusable(PolicyError(path: "-", message: "not loaded yet")))
        self.policy = policy
        let isXen = configuration.transport == .xen
        let roster = DomainRoster(
            inventory: configuration.inventory, fixedIDs: !isXen, onChange: { policy.update(inventory: $0) })
        self.roster = roster
        transport = try VchanTransport.open(configuration.transport)
        let channels = ControlChannels(
            transport: transport, reactor: try Reactor(logger: logger),
            sendTimeout: configuration.limits.controlSendTimeout,
            logger: logger, onConnect: onConnect)
        self.channels = channels
        let audit = try configuration.auditLogPath.map { (path) throws(SluiceError) in
            try AuditLog(path: path, logger: logger)
        }
        let broker = CallBroker(
            limits: configuration.limits, channels: channels,
            verdicts: PolicyVerdicts(policy: policy, roster: roster, logger: logger), askAgent: askAgent,
            disposables: Disposables(
                toolstack: configuration.toolstack, roster: roster, isXen: isXen, logger: logger),
            audit: audit, logger: logger)
        self.broker = broker
        watcher = PolicyWatcher(
            store: policy, directories: configuration.policyDirectories,
            compatDirectory: configuration.compatDirectory, roster: roster, logger: logger)
        xenDomains = isXen ? XenDomains(roster: roster, logger: logger, serve: broker.serveAppeared) : nil
        watcher.reload()
    }

    /// Loads the policy again; a broken policy denies everything until fixed.
    public func reloadPolicy() { watcher.reload() }

    /// Serves every domain of the inventory, and reloads the policy when its files change. `onListening` runs
    /// once every domain's control channel is offered, so agents started after it never race the daemon.
    public func run(onListening: @Sendable () -> Void = {}) async {
        // Locally every domain of the inventory has a fixed id; on Xen only dom0's is known before xenstore is read.
        let fixed: [(DomainID, DomainName)] = roster.directory.names.enumerated().map {
            (DomainID(rawValue: UInt16($0.offset))!, $0.element)
        }
        var first: [DomainID: any Vchan] = [:]
        for (id, _) in fixed { first[id] = try? channels.offer(id) }
        if let xenDomains { await xenDomains.refresh() }
        onListening()
        let initial = first
        let (channels, broker) = (channels, broker)
        await withTaskGroup(of: Void.self) { group in
            for (id, name) in fixed {
                group.addTask { await channels.serve(id, name, first: initial[id], handler: broker) }
            }
            group.addTask { await broker.runDeadlines() }
            group.addTask { await self.watcher.run() }
            if let xenDomains { group.addTask { await xenDomains.run() } }
        }
    }
}
