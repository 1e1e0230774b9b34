/// One domain as the policy sees it (qrexec's system info).
public struct Domain: Hashable, Sendable {
    public var name: String
    /// `AdminVM`, `AppVM`, `TemplateVM`, `DispVM`, `StandaloneVM` or `RemoteVM`.
    public var type: String
    public var tags: [String]
    public var uuid: String?
    /// Whether disposables can be made from this domain (`@dispvm:NAME` is valid only then).
    public var templateForDispVMs: Bool
    /// The template `@dispvm` means when this domain is the source.
    public var defaultDispVM: String?
    /// `Running`, `Halted`, ... Only `Running` counts as running.
    public var powerState: String
    /// Internal domains are never offered in an ask dialog.
    public var isInternal: Bool
    /// For a RemoteVM: the local domain that carries its calls, and the service it uses there.
    public var relayVM: String?
    public var transportRPC: String?
    /// On the local backend, who the domain's processes run as: a user name, or a uid (the policy ignores both).
    /// Without either, `sluice-host` running as root makes or reuses the system user `sluice-<name>`.
    public var localUser: String?
    public var localUID: UInt32?

    public init(
        name: String, type: String = "AppVM", tags: [String] = [], uuid: String? = nil,
        templateForDispVMs: Bool = false,
        defaultDispVM: String? = nil, powerState: String = "Halted", isInternal: Bool = false, relayVM: String? = nil,
        transportRPC: String? = nil, localUser: String? = nil, localUID: UInt32? = nil
    ) {
        self.name = name
        self.type = type
        self.tags = tags
        self.uuid = uuid
        self.templateForDispVMs = templateForDispVMs
        self.defaultDispVM = defaultDispVM
        self.powerState = powerState
        self.isInternal = isInternal
        self.relayVM = relayVM
        self.transportRPC = transportRPC
        self.localUser = localUser
        self.localUID = localUID
    }

    public var isRunning: Bool { powerState == "Running" }
}

/// Every domain the policy decides about. The admin domain `dom0` is always present: if the list lacks it, it
/// is added as a running `AdminVM` with the all-zero uuid.
public struct Inventory: Hashable, Sendable {
    public private(set) var domains: [Domain]

    public init(domains: [Domain]) {
        var domains = domains
        if !domains.contains(where: { $0.name == "dom0" }) {
            domains.insert(
                Domain(name: "dom0", type: "AdminVM", uuid: PolicyToken.adminUUID, powerState: "Running"), at: 0)
        }
        self.domains = domains
    }

    public func domain(named name: String) -> Domain? { domains.first { $0.name == name } }
}
