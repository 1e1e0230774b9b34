public import SluiceWire

/// What the policy (or, for the admin domain's own requests, the daemon) decided about a request, already resolved
/// to something the table can act on: the daemon maps names to domain ids and `@dispvm` targets to templates.
public struct Verdict: Sendable, Hashable {
    public enum Action: Sendable, Hashable {
        /// Run the call on this target.
        case allow(TargetPlan)
        /// Ask the user first; the ask agent answers with a plan or nothing.
        case ask(AskQuestion)
        /// Refuse: `reason` for the audit log, `code` and `message` for the caller.
        case refuse(reason: String, code: SluiceError.Code, message: String)
    }

    public var action: Action
    /// The rule that decided (`FILE:LINE`), nil for the admin domain's requests.
    public var rule: String?
    /// The requested target as the policy normalised it (an unknown name becomes `@default`).
    public var requestedTarget: String?
    /// The user from the rule's `user=`.
    public var user: UserName?

    public init(_ action: Action, rule: String? = nil, requestedTarget: String? = nil, user: UserName? = nil) {
        self.action = action
        self.rule = rule
        self.requestedTarget = requestedTarget
        self.user = user
    }
}

/// Where an allowed call runs.
public enum TargetPlan: Sendable, Hashable {
    /// A domain the daemon knows (`id` nil: it has no id yet; on Xen a halted domain gets one when it starts). With
    /// `autostart`, a domain whose agent is not connected is started through the toolstack.
    case domain(name: DomainName, id: DomainID?, autostart: Bool)
    /// A new disposable from `template`, made for this call and destroyed when it ends.
    case disposable(template: DomainName)
    /// The plan's target cannot be resolved (a `@dispvm` with no template): refused after admission, as qrexec does,
    /// with `reason`.
    case unresolvable(name: String, reason: String)

    /// The name the audit log records as the target before the call runs.
    public var name: String {
        switch self {
        case .domain(let name, _, _): name.rawValue
        case .disposable(let template): "@dispvm:\(template.rawValue)"
        case .unresolvable(let name, _): name
        }
    }
}

/// A question for the user, as qrexec's `policy.Ask` asks it.
public struct AskQuestion: Sendable, Hashable {
    public var source: String
    public var service: String
    public var argument: String
    public var targets: [String]
    public var defaultTarget: String?
    /// Whether the chosen target may be started if it is not running (the rule's `autostart`); not shown to the user.
    public var autostart: Bool

    public init(
        source: String, service: String, argument: String, targets: [String], defaultTarget: String?,
        autostart: Bool = true
    ) {
        self.source = source
        self.service = service
        self.argument = argument
        self.targets = targets
        self.defaultTarget = defaultTarget
        self.autostart = autostart
    }
}

/// What the daemon asks the policy about a request: the source is the session's domain, never a field.
public struct PolicyQuestion: Sendable, Hashable {
    public var source: DomainID
    public var sourceName: DomainName
    public var request: CallRequest
}

/// A target the toolstack made ready: a halted domain started, or a disposable made (whose id the daemon now serves).
public struct PreparedTarget: Sendable, Hashable {
    public var id: DomainID
    public var name: DomainName
    public var isDisposable: Bool

    public init(id: DomainID, name: DomainName, isDisposable: Bool) {
        self.id = id
        self.name = name
        self.isDisposable = isDisposable
    }
}
