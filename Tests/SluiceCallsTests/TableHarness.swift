import SluiceCalls
import SluiceWire

/// A call table with four domains' sessions open (dom0 0, work 1, vault 2, rogue 3), a hand-moved clock, and every
/// effect it asked for, so that a test reads like the messages the daemon would see.
struct TableHarness {
    var table: CallTable
    var now = MonotonicTime(nanoseconds: 1_000_000_000_000)
    var sessions: [String: SessionID] = [:]
    var ids: [String: DomainID] = ["dom0": .admin]
    /// Every effect so far, in order.
    var effects: [CallEffect] = []
    var nextRequest: UInt64 = 1

    static let domains = ["dom0", "work", "vault", "rogue", "sleepy"]

    init(limits: CallLimits = CallLimits(), seed: UInt64 = 7, open: [String] = ["dom0", "work", "vault", "rogue"]) {
        table = CallTable(limits: limits, ids: .seeded(seed))
        for (index, name) in Self.domains.enumerated() { ids[name] = DomainID(rawValue: UInt16(index))! }
        for name in open { self.open(name) }
    }

    @discardableResult
    mutating func open(_ name: String) -> SessionID {
        let (session, opened) = table.openSession(domain: ids[name]!, name: try! DomainName(name), now: now)
        sessions[name] = session
        effects += opened
        return session
    }

    @discardableResult
    mutating func step(_ event: CallEvent, from party: Party) -> CallStep {
        let step = table.handle(event, from: party, now: now)
        effects += step.effects
        return step
    }

    @discardableResult
    mutating func step(_ event: CallEvent, from name: String) -> CallStep {
        step(event, from: .session(sessions[name]!))
    }

    mutating func advance(_ duration: Duration) { now = now + duration }

    /// A request from `from`; returns the new call's id (nil if it was refused at once) and its request id.
    mutating func request(
        from: String, service: String = "test.Echo", target: String = "vault", argument: String = ""
    ) -> (call: CallID?, request: RequestID) {
        let id = RequestID(rawValue: nextRequest)!
        nextRequest += 1
        let request = CallRequest(
            id: id, call: try! ServiceCall(parsing: argument.isEmpty ? service : service + "+" + argument),
            target: try! TargetName(target))
        let step = step(.request(request), from: from)
        for case .evaluate(let call, _) in step.effects { return (call, id) }
        return (nil, id)
    }

    func plan(_ name: String, autostart: Bool = true) -> TargetPlan {
        .domain(name: try! DomainName(name), id: ids[name], autostart: autostart)
    }

    @discardableResult
    mutating func allow(_ call: CallID, _ plan: TargetPlan) -> CallStep {
        step(.decided(call, Verdict(.allow(plan), rule: "30-test.policy:1")), from: .policy)
    }

    /// A call from work to vault in `state` (with sleepy as the target for the states that wait for a target).
    mutating func call(in state: CallState.Kind) -> CallID {
        switch state {
        case .deciding:
            return request(from: "work").call!
        case .asking:
            let call = request(from: "work").call!
            step(.decided(call, Verdict(.ask(question))), from: .policy)
            return call
        case .starting:
            let call = request(from: "work", target: "sleepy").call!
            allow(call, plan("sleepy"))
            return call
        case .awaitingAgent:
            let call = self.call(in: .starting)
            step(
                .prepared(
                    call, PreparedTarget(id: ids["sleepy"]!, name: try! DomainName("sleepy"), isDisposable: false)),
                from: .toolstack)
            return call
        case .brokered:
            let call = request(from: "work").call!
            allow(call, plan("vault"))
            return call
        case .closing:
            let call = self.call(in: .brokered)
            step(.cancel(table.calls[call]!.requestID), from: "work")
            return call
        }
    }

    var question: AskQuestion {
        AskQuestion(source: "work", service: "test.Echo", argument: "+", targets: ["vault"], defaultTarget: nil)
    }

    func state(_ call: CallID) -> CallState.Kind? { table.calls[call]?.state.kind }

    /// The audit lines so far.
    var audit: [(record: CallRecord, event: CallRecord.Event)] {
        effects.compactMap { if case .audit(let record, let event) = $0 { (record, event) } else { nil } }
    }

    /// The code of the last refusal sent to `name`'s session.
    func lastRefusal(to name: String) -> SluiceError.Code? {
        for message in sent(to: name).reversed() { if case .refused(let refusal) = message { return refusal.code } }
        return nil
    }

    /// The messages sent so far to `name`'s session.
    func sent(to name: String) -> [Message] {
        let session = sessions[name]
        return effects.compactMap {
            switch $0 {
            case .send(let message, let to) where to == session: message
            case .sendIfRoom(let message, let to) where to == session: message
            default: nil
            }
        }
    }
}
