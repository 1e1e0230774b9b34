import SluiceLocks
public import SluicePolicy
public import SluiceWire

/// The domains the daemon serves and the policy sees: the inventory's (with the fixed ids of `DomainDirectory`
/// locally, only dom0's on Xen) plus those that appear while it runs (a disposable made for a call, a domain xenstore
/// lists). Each appeared domain's control channel is served by a task the roster keeps, so that removing the domain
/// stops serving it.
public final class DomainRoster: Sendable {
    public let directory: DomainDirectory
    private let configured: Inventory
    private let state: LockedValue<State>
    /// Called with the inventory the policy should see, whenever it changes.
    private let onChange: @Sendable (Inventory) -> Void

    struct Appeared: Sendable {
        var name: DomainName
        var server: Task<Void, Never>?
        /// Set while a server task is being started, so that two starters (the toolstack's result and xenstore's
        /// watch, for the same new domain) never both serve it.
        var serving = false
        var isDisposable: Bool
    }

    struct State: Sendable {
        var inventory: Inventory
        var appeared: [DomainID: Appeared] = [:]
        var appearedIDs: [String: DomainID] = [:]
    }

    /// - Parameters:
    ///   - fixedIDs: whether the inventory's domains have the fixed ids of `DomainDirectory` (local), or only dom0's
    ///     id is known before xenstore is read (Xen).
    init(inventory: Inventory, fixedIDs: Bool, onChange: @escaping @Sendable (Inventory) -> Void) {
        configured = inventory
        directory = DomainDirectory(fixedIDs ? inventory : Inventory(domains: []))
        state = LockedValue(State(inventory: inventory))
        self.onChange = onChange
    }

    /// The inventory the policy sees now: the configured one plus the disposables that exist.
    public var inventory: Inventory { state.withLock { $0.inventory } }

    /// The id of a domain of the inventory or of one that appeared.
    public func id(of name: String) -> DomainID? {
        directory.id(of: name) ?? state.withLock { $0.appearedIDs[name] }
    }

    /// The domains that appeared and are not disposables (on Xen: those xenstore listed), with their names.
    var listedDomains: [DomainID: DomainName] {
        state.withLock { state in state.appeared.filter { !$0.value.isDisposable }.mapValues(\.name) }
    }

    /// Adds a domain that appeared, shown to the policy as `entry`. False if its id or name is taken (a disposable may
    /// never take an inventory domain's name).
    func add(_ id: DomainID, _ name: DomainName, entry: Domain, isDisposable: Bool) -> Bool {
        let inventory = state.withLock { state -> Inventory? in
            // On Xen a disposable the toolstack made is usually listed by xenstore's watch first: it becomes the
            // disposable it is (same id, same name), and keeps the server it has.
            if isDisposable, let listed = state.appeared[id], listed.name == name, !listed.isDisposable {
                state.appeared[id]?.isDisposable = true
                state.inventory = Inventory(
                    domains: state.inventory.domains.filter { $0.name != name.rawValue } + [entry])
                return state.inventory
            }
            guard id != .admin, directory.id(of: name.rawValue) == nil || !isDisposable,
                state.appeared[id] == nil, state.appearedIDs[name.rawValue] == nil
            else { return nil }
            state.appeared[id] = Appeared(name: name, server: nil, isDisposable: isDisposable)
            state.appearedIDs[name.rawValue] = id
            state.inventory = Inventory(domains: state.inventory.domains.filter { $0.name != name.rawValue } + [entry])
            return state.inventory
        }
        guard let inventory else { return false }
        onChange(inventory)
        return true
    }

    /// Starts the task that serves an appeared domain's control channel (cancelled when the domain goes), unless
    /// one serves it already.
    func serve(_ id: DomainID, with start: () -> Task<Void, Never>) {
        let claimed = state.withLock { state -> Bool in
            guard let domain = state.appeared[id], !domain.serving else { return false }
            state.appeared[id]?.serving = true
            return true
        }
        guard claimed else { return }
        let server = start()
        let kept = state.withLock { state -> Bool in
            guard state.appeared[id] != nil else { return false }
            state.appeared[id]?.server = server
            return true
        }
        if !kept { server.cancel() }
    }

    /// Forgets a domain that went away and stops serving it; returns what it was.
    func remove(_ id: DomainID) -> (name: DomainName, isDisposable: Bool)? {
        let removed = state.withLock { state -> (Appeared, Inventory)? in
            guard let domain = state.appeared.removeValue(forKey: id) else { return nil }
            state.appearedIDs[domain.name.rawValue] = nil
            var domains = state.inventory.domains.filter { $0.name != domain.name.rawValue }
            if let configured = configured.domain(named: domain.name.rawValue) { domains.append(configured) }
            state.inventory = Inventory(domains: domains)
            return (domain, state.inventory)
        }
        guard let (domain, inventory) = removed else { return nil }
        domain.server?.cancel()
        onChange(inventory)
        return (domain.name, domain.isDisposable)
    }

    /// The inventory's own entry for `name`, if it has one.
    func configuredEntry(_ name: String) -> Domain? { configured.domain(named: name) }
}
