public import SluiceWire

/// What the target's side knows about a call when it starts the handler.
public struct CallContext: Sendable, Hashable {
    public var call: ServiceCall
    /// The calling domain, as the daemon established it from the caller's channel.
    public var source: DomainName
    /// The target the caller asked for (`QREXEC_REQUESTED_TARGET`).
    public var requestedTarget: TargetName
    /// The policy's `user=`; nil means the agent's default. A service's `force-user` overrides it.
    public var user: UserName?
    public var callID: RequestID?
    /// Whether this side is the admin domain: qrexec then sets the requested target type (`name` or `keyword`)
    /// and sends it in a socket service's descriptor.
    public var inAdminDomain: Bool
    /// The call's deadline in milliseconds, from the exec order; the service's `timeout` applies when shorter.
    public var timeoutMilliseconds: UInt32?

    public init(
        call: ServiceCall, source: DomainName, requestedTarget: TargetName = .default, user: UserName? = nil,
        callID: RequestID? = nil, inAdminDomain: Bool = false, timeoutMilliseconds: UInt32? = nil
    ) {
        self.call = call
        self.source = source
        self.requestedTarget = requestedTarget
        self.user = user
        self.callID = callID
        self.inAdminDomain = inAdminDomain
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    /// `name` or `keyword` (a requested target with a leading `@`), as qrexec reports it in the admin domain.
    var requestedTargetType: String { requestedTarget.rawValue.hasPrefix("@") ? "keyword" : "name" }

    /// The socket service descriptor: `SERVICE+ARG SOURCE\0`, and in the admin domain
    /// `SERVICE+ARG SOURCE name|keyword TARGET\0` (a keyword without its `@`).
    public var serviceDescriptor: [UInt8] {
        var text = call.fullName + " " + source.rawValue
        if inAdminDomain {
            let target = requestedTarget.rawValue
            text += " " + requestedTargetType + " " + (target.hasPrefix("@") ? String(target.dropFirst()) : target)
        }
        return Array(text.utf8) + [0]
    }
}
