/// A qube named in a policy: by name, or by `uuid:` (R4.3). Names are not syntax-checked in rules, as in qrexec.
public enum QubeReference: Hashable, Sendable, CustomStringConvertible {
    case name(String)
    case uuid(String)

    public var description: String {
        switch self {
        case .name(let name): name
        case .uuid(let uuid): "uuid:" + uuid
        }
    }
}

/// One domain specification in a policy rule: the SOURCE and TARGET columns, and the values of `target=` and
/// `default_target=`. Which cases a context accepts is decided by `PolicyToken.parse(_:context:)`.
public enum PolicyToken: Hashable, Sendable, CustomStringConvertible {
    /// `*`: anything, the admin domain included.
    case anything
    /// `@anyvm`: any qube but the admin domain (as a target, also `@default` and disposable requests).
    case anyVM
    /// `@adminvm`, `dom0` or `uuid:00000000-0000-0000-0000-000000000000`.
    case adminVM
    /// `@default`: the caller named no target.
    case defaultTarget
    /// `@dispvm`: a new disposable from the source's default disposable template.
    case dispVM
    /// `@dispvm:X`: a new disposable from template X.
    case dispVMTemplate(QubeReference)
    /// `@dispvm:@tag:T`: a new disposable from any disposable template tagged T.
    case dispVMTag(String)
    /// `@tag:T`.
    case tag(String)
    /// `@type:T`.
    case type(String)
    /// A qube by name or uuid.
    case qube(QubeReference)

    /// The admin domain's uuid, which qrexec treats as another spelling of `dom0`.
    public static let adminUUID = "00000000-0000-0000-0000-000000000000"

    /// Where a token appears, which decides the cases it may be.
    public enum Context: String, Sendable {
        case source
        case target
        /// `target=` and `default_target=`.
        case redirect
    }

    public var description: String {
        switch self {
        case .anything: "*"
        case .anyVM: "@anyvm"
        case .adminVM: "@adminvm"
        case .defaultTarget: "@default"
        case .dispVM: "@dispvm"
        case .dispVMTemplate(let template): "@dispvm:\(template)"
        case .dispVMTag(let tag): "@dispvm:@tag:\(tag)"
        case .tag(let tag): "@tag:\(tag)"
        case .type(let type): "@type:\(type)"
        case .qube(let qube): qube.description
        }
    }

    /// Parses `text` for `context`, or returns why it is not valid there.
    public static func parse(_ text: String, context: Context) -> Result<PolicyToken, PolicyTokenError> {
        guard !text.isEmpty else { return .failure(.init("an empty \(context.rawValue) token")) }
        let token: PolicyToken
        switch text {
        case "*": token = .anything
        case "@anyvm": token = .anyVM
        case "@adminvm", "dom0", "uuid:" + adminUUID: token = .adminVM
        case "@default": token = .defaultTarget
        case "@dispvm": token = .dispVM
        default:
            if text.hasPrefix("@dispvm:@tag:") {
                let value = String(text.dropFirst("@dispvm:@tag:".count))
                guard !value.isEmpty else { return .failure(.init("invalid empty @dispvm:@tag: token")) }
                token = .dispVMTag(value)
            } else if text.hasPrefix("@dispvm:") {
                let value = String(text.dropFirst("@dispvm:".count))
                guard !value.isEmpty else { return .failure(.init("invalid empty @dispvm: token")) }
                guard !value.hasPrefix("@") else { return .failure(.init("invalid \(context.rawValue) token \(text)")) }
                if value.hasPrefix("uuid:") {
                    let uuid = String(value.dropFirst(5))
                    guard !uuid.isEmpty else { return .failure(.init("invalid empty uuid: in \(text)")) }
                    token = .dispVMTemplate(.uuid(uuid))
                } else {
                    token = .dispVMTemplate(.name(value))
                }
            } else if text.hasPrefix("@tag:") {
                let value = String(text.dropFirst(5))
                guard !value.isEmpty else { return .failure(.init("invalid empty @tag: token")) }
                guard !value.hasPrefix("@") else { return .failure(.init("invalid \(context.rawValue) token \(text)")) }
                token = .tag(value)
            } else if text.hasPrefix("@type:") {
                let value = String(text.dropFirst(6))
                guard !value.isEmpty else { return .failure(.init("invalid empty @type: token")) }
                guard !value.hasPrefix("@") else { return .failure(.init("invalid \(context.rawValue) token \(text)")) }
                token = .type(value)
            } else if text.hasPrefix("@") {
                return .failure(.init("invalid \(context.rawValue) token \(text) (unknown keyword; uuid: takes no @)"))
            } else if text.hasPrefix("uuid:") {
                let value = String(text.dropFirst(5))
                guard !value.isEmpty else { return .failure(.init("invalid empty uuid: token")) }
                token = .qube(.uuid(value))
            } else {
                token = .qube(.name(text))
            }
        }
        guard token.isAllowed(in: context) else {
            return .failure(.init("\(text) cannot be a \(context.rawValue) (\(Self.allowedDescription(context)))"))
        }
        return .success(token)
    }

    func isAllowed(in context: Context) -> Bool {
        switch (self, context) {
        case (.defaultTarget, .source), (.dispVM, .source): false
        case (.anything, .redirect), (.anyVM, .redirect), (.defaultTarget, .redirect), (.tag, .redirect),
            (.type, .redirect), (.dispVMTag, .redirect):
            false
        default: true
        }
    }

    static func allowedDescription(_ context: Context) -> String {
        switch context {
        case .source: "expected a qube name, uuid:, dom0, @adminvm, *, @anyvm, @tag:, @type: or @dispvm:"
        case .target: "expected a qube name, uuid:, dom0, @adminvm, *, @anyvm, @default, @tag:, @type: or @dispvm forms"
        case .redirect: "expected a qube name, uuid:, dom0, @adminvm, @dispvm or @dispvm:NAME"
        }
    }
}

public struct PolicyTokenError: Error, Hashable, Sendable {
    public var message: String
    init(_ message: String) { self.message = message }
}
