public import SluiceWire

/// Where a call stands. Every state names who may move it on (see `CallTable` and docs/protocol.md, "A call's
/// states"):
///
/// | state | moved on by |
/// |---|---|
/// | `deciding` | the policy's verdict; the caller's cancel or its channel closing |
/// | `asking` | the ask agent's answer; the caller's cancel or its channel closing |
/// | `starting` | the toolstack (started, made, failed); the caller's cancel or its channel closing |
/// | `awaitingAgent` | the target's agent connecting; a deadline; the caller's cancel or its channel closing |
/// | `brokered` | the target's `done` or its channel closing; the caller's cancel (then `closing`) |
/// | `closing` | the target's `done` or its channel closing; a deadline |
public enum CallState: Sendable, Hashable {
    /// The request arrived and the policy is deciding.
    case deciding
    /// The policy said `ask`; the user is being asked.
    case asking
    /// Admitted; the toolstack is starting the target or making a disposable.
    case starting
    /// Admitted; the target exists and the daemon waits for its agent to connect, until `deadline`.
    case awaitingAgent(DomainID, deadline: MonotonicTime)
    /// `connect` went to the caller and `exec` to the target on session `target`; the two meet on a data channel the
    /// daemon does not see.
    case brokered(target: SessionID)
    /// The caller's side ended (its agent cancelled the request) and the target was told to stop; it must report the
    /// end by `deadline`.
    case closing(target: SessionID, deadline: MonotonicTime)

    /// The state without its details, for tables of legal moves.
    public var kind: Kind {
        switch self {
        case .deciding: .deciding
        case .asking: .asking
        case .starting: .starting
        case .awaitingAgent: .awaitingAgent
        case .brokered: .brokered
        case .closing: .closing
        }
    }

    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case deciding, asking, starting, awaitingAgent, brokered, closing
    }

    /// The session the call's `exec` went out on, once there is one.
    public var targetSession: SessionID? {
        switch self {
        case .brokered(let target), .closing(let target, _): target
        default: nil
        }
    }
}

/// One call in the table.
public struct Call: Sendable, Hashable {
    public let id: CallID
    public internal(set) var state: CallState
    /// The session the request arrived on, and the domain it vouches for.
    public let caller: SessionID
    public let source: DomainID
    public let sourceName: DomainName
    /// The caller's id for the request on its session.
    public let requestID: RequestID
    public let request: CallRequest
    public internal(set) var record: CallRecord
    public let started: MonotonicTime
    /// How the call will run, once decided.
    public internal(set) var plan: TargetPlan?
    public internal(set) var user: UserName?
    /// The target domain, once known (a disposable's once made).
    public internal(set) var targetDomain: DomainID?
    public internal(set) var targetName: DomainName?
    /// A slot of the caller's in-flight limit and a port are held from admission to the end.
    public internal(set) var port: VchanPort?
    /// The disposable made for this call, destroyed when it ends.
    public internal(set) var disposable: DomainID?
    /// Whether a slot of the disposable limits is held for this call.
    public internal(set) var holdsDisposableSlot = false

    public var isAdmitted: Bool { port != nil }
}
