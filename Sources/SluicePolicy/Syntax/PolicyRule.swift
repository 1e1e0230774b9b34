/// Where a rule came from, for `rule` in decisions and for errors.
public struct RuleOrigin: Hashable, Sendable, CustomStringConvertible {
    /// The file's name without its directory and without a `.policy` suffix.
    public var file: String
    /// The line, or nil for the implicit deny rules `!compat-4.0` appends after an argument-specific file.
    public var line: Int?

    public init(file: String, line: Int?) {
        self.file = file
        self.line = line
    }

    /// `FILE:LINE`, or `FILE:implicit`.
    public var description: String { "\(file):\(line.map(String.init) ?? "implicit")" }
}

/// What a rule does, with the parameters each action accepts.
public enum PolicyAction: Hashable, Sendable {
    case allow(Allow)
    case deny(notify: Bool)
    case ask(Ask)

    public struct Allow: Hashable, Sendable {
        public var target: PolicyToken?
        /// `user=`; nil (or empty) means the target's default user.
        public var user: String?
        public var notify: Bool
        public var autostart: Bool
    }

    public struct Ask: Hashable, Sendable {
        public var target: PolicyToken?
        public var defaultTarget: PolicyToken?
        public var user: String?
        public var notify: Bool
        public var autostart: Bool
    }

    public var name: String {
        switch self {
        case .allow: "allow"
        case .deny: "deny"
        case .ask: "ask"
        }
    }

    public var notify: Bool {
        switch self {
        case .allow(let allow): allow.notify
        case .deny(let notify): notify
        case .ask(let ask): ask.notify
        }
    }

    /// `target=` of allow and ask.
    public var redirect: PolicyToken? {
        switch self {
        case .allow(let allow): allow.target
        case .ask(let ask): ask.target
        case .deny: nil
        }
    }
}

/// One rule: the five columns, with `*` as nil for the service and argument.
public struct PolicyRule: Hashable, Sendable {
    /// nil for `*`.
    public var service: String?
    /// The argument without its `+` (`""` for `+`); nil for `*`.
    public var argument: String?
    public var source: PolicyToken
    public var target: PolicyToken
    public var action: PolicyAction
    public var origin: RuleOrigin
    /// The file the rule is in (full path), for lint messages.
    public var path: String

    public init(
        service: String?, argument: String?, source: PolicyToken, target: PolicyToken, action: PolicyAction,
        origin: RuleOrigin, path: String = ""
    ) {
        self.path = path
        self.service = service
        self.argument = argument
        self.source = source
        self.target = target
        self.action = action
        self.origin = origin
    }
}
