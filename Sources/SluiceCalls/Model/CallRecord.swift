/// One line of the audit log about one call or request: what was asked, what was decided, and how it ended. The
/// call table builds it; the audit log writes it.
public struct CallRecord: Sendable, Hashable {
    /// The call's id; 0 on a `refused` line (the request never became a call).
    public var call: UInt64
    public var source: String
    public var requestedTarget: String
    public var target: String?
    public var service: String
    public var argument: String
    /// `allow`, `ask-allowed`, `deny` or `ask`.
    public var decision: String
    /// `FILE:LINE` of the policy rule that decided.
    public var rule: String?
    /// Why a request was refused, or why the daemon (not the target's report) ended a call.
    public var reason: String?
    public var exitCode: Int?
    public var bytesIn: UInt64?
    public var bytesOut: UInt64?
    public var duration: Duration?

    public init(
        call: UInt64, source: String, requestedTarget: String, target: String?, service: String, argument: String,
        decision: String, rule: String? = nil, reason: String? = nil
    ) {
        self.call = call
        self.source = source
        self.requestedTarget = requestedTarget
        self.target = target
        self.service = service
        self.argument = argument
        self.decision = decision
        self.rule = rule
        self.reason = reason
    }

    /// What a line records.
    public enum Event: String, Sendable, Hashable {
        /// The call was allowed and is about to be brokered (written before anything is sent).
        case decided
        /// The call ended, with its outcome.
        case ended
        /// The request was refused and never became a call.
        case refused
    }
}
