/// Who causes a step of the call table. Domains speak only through their sessions; the rest are the daemon's own
/// parts, which are trusted but may be late (an answer for a call that was cancelled meanwhile is stale, not wrong).
public enum Party: Hashable, Sendable, CustomStringConvertible {
    /// A domain's control channel. Whether it is the call's caller, its target or neither is the table's question.
    case session(SessionID)
    /// The policy engine's decision for a request.
    case policy
    /// The user's answer to an `ask`, through the ask agent.
    case askAgent
    /// The toolstack: a halted domain started, a disposable made, or either failed.
    case toolstack
    /// Time: a deadline passed.
    case deadline

    public var description: String {
        switch self {
        case .session(let id): "\(id)"
        case .policy: "the policy"
        case .askAgent: "the ask agent"
        case .toolstack: "the toolstack"
        case .deadline: "a deadline"
        }
    }
}

/// A session's part in one call.
public enum CallRole: String, Hashable, Sendable, CaseIterable {
    /// The session the request arrived on.
    case caller
    /// The session the `exec` order went out on.
    case target
    /// Any other session, including another session of the caller's or the target's domain.
    case stranger
}
