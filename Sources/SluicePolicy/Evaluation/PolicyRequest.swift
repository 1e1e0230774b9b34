/// One call to decide: who (the source, from the channel), what (service and argument), and which target the
/// caller asked for. Names are already valid (the wire types check them); the policy checks what they mean.
public struct PolicyRequest: Hashable, Sendable {
    public var service: String
    /// The argument without its `+`; `""` for none.
    public var argument: String
    public var source: String
    /// As the caller gave it: a name, `uuid:...`, `dom0`, `@adminvm`, `@default` (or `""`), `@dispvm`, `@dispvm:NAME`.
    public var target: String
    /// Only for a relay calling on behalf of one of its RemoteVMs.
    public var requestedSource: String?

    public init(service: String, argument: String = "", source: String, target: String, requestedSource: String? = nil)
    {
        self.service = service
        self.argument = argument
        self.source = source
        self.target = target
        self.requestedSource = requestedSource
    }
}

/// Why a call was denied: stable names for `sluice-policy eval --json` and the audit log.
public enum DenyReason: String, Sendable, Hashable, CaseIterable {
    case noMatchingRule = "no-matching-rule"
    case denyRule = "deny-rule"
    /// An allow whose target resolves to `@default`, or to a qube that does not exist.
    case noTarget = "no-target"
    case noDefaultDispVM = "no-default-dispvm"
    case autostartNoAndNotRunning = "autostart-no-and-not-running"
    case askNoTargets = "ask-no-targets"
    case loopback
    case remoteVMNoTransportRPC = "remotevm-no-transport-rpc"
    /// The policy could not be loaded (fail closed); not a decision of any rule.
    case policyUnusable = "policy-unusable"
}

/// What the policy decided.
public struct Decision: Hashable, Sendable {
    public enum Action: String, Sendable, Hashable {
        case allow
        case deny
        case ask
    }

    public var action: Action
    /// The resolved target: a domain name, `dom0`, or `@dispvm:TEMPLATE` for a new disposable. nil unless allowed.
    public var target: String?
    /// The target the request named after normalisation (an unknown name becomes `@default`).
    public var requestedTarget: String
    /// `user=`; nil means the target's default user.
    public var user: String?
    public var autostart: Bool?
    public var notify: Bool
    /// `FILE:LINE` of the deciding rule, or nil when no rule matched.
    public var rule: String?
    public var reason: DenyReason?
    /// For ask: the choices (sorted) and the preselected one.
    public var targetsForAsk: [String]?
    public var defaultTarget: String?
    /// For a call to a RemoteVM: `TRANSPORT+REMOTE+SERVICE+ARG`, the service to call on the relay.
    public var service: String?
    /// For a call relayed on behalf of a RemoteVM: the RemoteVM, which becomes the source the service sees.
    public var policySource: String?

    static func deny(_ reason: DenyReason, requestedTarget: String, rule: String?, notify: Bool, policySource: String?)
        -> Decision
    {
        Decision(
            action: .deny, target: nil, requestedTarget: requestedTarget, user: nil, autostart: nil, notify: notify,
            rule: rule,
            reason: reason, targetsForAsk: nil, defaultTarget: nil, service: nil, policySource: policySource)
    }
}
