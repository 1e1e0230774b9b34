public import SluiceWire

/// The admin domain's book of calls: every call's state, who may move it on, and the limits it counts against.
///
/// Pure and synchronous: no I/O, no threads, no clock. Each step is given an event, the `Party` that caused it and the
/// time, and returns what the daemon must do (`CallEffect`s, in order) or why the sender broke the protocol
/// (`CallViolation`). A message from a domain is judged by the session it arrived on: a session may speak only about
/// calls it takes part in, in the way its part allows (the caller requests and cancels, the target reports the end),
/// and anything else is a violation that changes no call at all. docs/protocol.md ("A call's states") has the table
/// of legal moves that `CallTableTransitionTests` checks exhaustively.
public struct CallTable: Sendable, Hashable {
    public let limits: CallLimits

    /// The calls that have not ended, by id.
    public internal(set) var calls: [CallID: Call] = [:]
    var sessions: [SessionID: Session] = [:]
    var liveSessions: [DomainID: SessionID] = [:]
    var admitted: [DomainID: Int] = [:]
    public internal(set) var admittedTotal = 0
    var asks: [DomainID: Int] = [:]
    public internal(set) var asksTotal = 0
    var disposableSlots: [DomainID: Int] = [:]
    public internal(set) var disposableSlotsTotal = 0
    /// Work of the daemon's own parts still under way for calls that have ended: its result must still come back to
    /// release what it holds (a question on the screen, a disposable being made).
    var outstanding: [CallID: Outstanding] = [:]
    var ports: Set<UInt16> = []
    var nextPort: UInt16 = Self.firstPort
    /// Calls the daemon ended itself after brokering them, whose target may still report late.
    var tombstones: [CallID: DomainID] = [:]
    var tombstoneOrder: [CallID] = []
    var tombstoneHead = 0
    var deadlines: [CallID: MonotonicTime] = [:]
    var nextSession: UInt64 = 1
    var ids: CallIDGenerator

    /// The first data-channel port (512 is the control channel's).
    public static let firstPort: UInt16 = 513

    struct Session: Sendable, Hashable {
        var info: SessionInfo
        /// The highest request id the session has used: a cancel of a lower id that is not open is late, not forged.
        var highestRequest: UInt64 = 0
        var open: [RequestID: CallID] = [:]
        var rate: RequestRate
        var rateLog = RateLimitLog()
    }

    enum Outstanding: Sendable, Hashable {
        case ask(source: DomainID)
        case creation(source: DomainID)
    }

    public init(limits: CallLimits = CallLimits(), ids: CallIDGenerator = .system) {
        self.limits = limits
        self.ids = ids
    }

    // MARK: Sessions

    /// A domain's agent connected (after hello). Calls waiting for that domain's agent are brokered now. A domain has
    /// one session at a time: an older one still open is closed first.
    public mutating func openSession(domain: DomainID, name: DomainName, now: MonotonicTime) -> (
        SessionID, [CallEffect]
    ) {
        var effects: [CallEffect] = []
        if let old = liveSessions[domain] { effects += closeSession(old, now: now).effects }
        let id = SessionID(rawValue: nextSession)
        nextSession += 1
        sessions[id] = Session(
            info: SessionInfo(id: id, domain: domain, name: name),
            rate: RequestRate(perSecond: limits.requestsPerSecond, burst: limits.requestsPerSecond, now: now))
        liveSessions[domain] = id
        for callID in calls.keys.sorted() {
            guard let call = calls[callID], case .awaitingAgent(let waited, _) = call.state, waited == domain else {
                continue
            }
            effects += broker(callID, target: id)
        }
        return (id, effects)
    }

    /// The session's domain, while it is open.
    public func session(_ id: SessionID) -> SessionInfo? { sessions[id]?.info }

    /// The open session of `domain`, if its agent is connected.
    public func liveSession(of domain: DomainID) -> SessionID? { liveSessions[domain] }

    // MARK: Steps

    /// One step: `event`, caused by `party`, at `now`.
    public mutating func handle(_ event: CallEvent, from party: Party, now: MonotonicTime) -> CallStep {
        switch (event, party) {
        case (.request(let request), .session(let session)): return receive(request, from: session, now: now)
        case (.cancel(let id), .session(let session)): return cancel(id, from: session, now: now)
        case (.done(let report), .session(let session)): return done(report, from: session, now: now)
        case (.sessionClosed, .session(let session)): return closeSession(session, now: now)
        case (.decided(let call, let verdict), .policy): return decided(call, verdict, now: now)
        case (.answered(let call, let plan), .askAgent): return answered(call, plan, now: now)
        case (.prepared(let call, let target), .toolstack): return prepared(call, target, now: now)
        case (.preparationFailed(let call, let error), .toolstack): return preparationFailed(call, error, now: now)
        case (.tick, .deadline): return expire(now: now)
        case (_, .session(let session)):
            return violation(session, .outOfOrder, "a domain cannot send \(event.name)")
        default:
            return .ignored("\(party) cannot cause \(event.name)")
        }
    }

    /// When the next deadline falls due, if any call has one.
    public var nextDeadline: MonotonicTime? { deadlines.values.min() }

    // MARK: Reading the table

    /// Calls in flight (admitted, not ended) from `domain`.
    public func inFlight(from domain: DomainID) -> Int { admitted[domain, default: 0] }

    /// Questions waiting for the user from `domain`, including those whose call has ended.
    public func pendingAsks(from domain: DomainID) -> Int { asks[domain, default: 0] }

    /// Disposable slots held for `domain`'s calls.
    public func disposableSlots(of domain: DomainID) -> Int { disposableSlots[domain, default: 0] }

    /// `session`'s part in `call`.
    public func role(of session: SessionID, in call: Call) -> CallRole {
        if call.state.targetSession == session { return .target }
        if call.caller == session { return .caller }
        return .stranger
    }

    /// The open call a session's request became, if it is still open.
    public func call(requested id: RequestID, on session: SessionID) -> CallID? { sessions[session]?.open[id] }

    // MARK: Helpers

    func violation(_ session: SessionID, _ code: SluiceError.Code, _ message: String) -> CallStep {
        let name = sessions[session]?.info.name ?? .admin
        return CallStep(
            violation: CallViolation(session: session, domain: name, error: SluiceError(code, message)))
    }
}

/// What one step of the table did.
public struct CallStep: Sendable, Hashable {
    /// What the daemon must do, in order.
    public var effects: [CallEffect] = []
    /// The sender broke the protocol; nothing changed.
    public var violation: CallViolation?
    /// The event was stale (late, or about a call that already ended) and changed nothing; why, for a debug line.
    public var ignored: String?

    public init(effects: [CallEffect] = [], violation: CallViolation? = nil, ignored: String? = nil) {
        self.effects = effects
        self.violation = violation
        self.ignored = ignored
    }

    static func ignored(_ why: String) -> CallStep { CallStep(ignored: why) }
}

extension CallEvent {
    /// The event's name for messages.
    public var name: String {
        switch self {
        case .request: "call"
        case .cancel: "cancel"
        case .done: "done"
        case .sessionClosed: "a channel's end"
        case .decided: "a policy verdict"
        case .answered: "an ask answer"
        case .prepared: "a prepared target"
        case .preparationFailed: "a toolstack failure"
        case .tick: "a deadline"
        }
    }
}
