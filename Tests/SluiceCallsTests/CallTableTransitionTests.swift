import SluiceCalls
import SluiceWire
import Testing

/// Every (state, event, sender) combination: the legal ones move the call as docs/protocol.md's table says, every
/// other one is refused (a violation from a domain, a stale event from the daemon's own parts) and leaves the whole
/// table as it was.
@Suite("Each state of a call admits only its own moves, from its own parties")
struct CallTableTransitionTests {
    enum Sender: String, CaseIterable {
        case caller, target, stranger, policy, askAgent, toolstack, deadline
    }

    enum Probe: String, CaseIterable {
        case cancel, done, sessionClosed, allow, refuse, ask, answerYes, answerNo, prepared, preparationFailed, tick
    }

    /// The legal moves: (state, event) → (the one sender that may cause it, the state it leads to; nil: the call ends).
    static let legal: [CallState.Kind: [Probe: (Sender, CallState.Kind?)]] = [
        .deciding: [
            .allow: (.policy, .brokered), .refuse: (.policy, nil), .ask: (.policy, .asking),
            .cancel: (.caller, nil), .sessionClosed: (.caller, nil),
        ],
        .asking: [
            .answerYes: (.askAgent, .brokered), .answerNo: (.askAgent, nil), .cancel: (.caller, nil),
            .sessionClosed: (.caller, nil),
        ],
        .starting: [
            .prepared: (.toolstack, .awaitingAgent), .preparationFailed: (.toolstack, nil), .cancel: (.caller, nil),
            .sessionClosed: (.caller, nil),
        ],
        .awaitingAgent: [.tick: (.deadline, nil), .cancel: (.caller, nil), .sessionClosed: (.caller, nil)],
        .brokered: [.done: (.target, nil), .cancel: (.caller, .closing), .sessionClosed: (.target, nil)],
        .closing: [.done: (.target, nil), .tick: (.deadline, nil), .sessionClosed: (.target, nil)],
    ]

    @Test("legal moves move the call, everything else changes nothing", arguments: CallState.Kind.allCases)
    func transitions(state: CallState.Kind) throws {
        for probe in Probe.allCases {
            for sender in Sender.allCases {
                var harness = TableHarness()
                let call = harness.call(in: state)
                let before = harness.table
                let party = self.party(sender, for: call, in: harness)
                let event = self.event(probe, for: call, in: &harness)
                let step = harness.step(event, from: party)
                let label = "\(state) + \(probe) from \(sender)"
                if let (legalSender, next) = Self.legal[state]?[probe], legalSender == sender {
                    #expect(step.violation == nil && step.ignored == nil, "\(label): \(step)")
                    #expect(harness.state(call) == next, "\(label) should lead to \(next.map(\.rawValue) ?? "the end")")
                } else if probe == .sessionClosed || (probe == .tick && sender == .deadline) {
                    // A channel may always close, and time always passes; they only end the calls they concern
                    // (above).
                    #expect(harness.table.calls[call] == before.calls[call], "\(label)")
                } else {
                    #expect(step.violation != nil || step.ignored != nil, "\(label) was accepted: \(step)")
                    #expect(harness.table == before, "\(label) changed the table")
                    if case .session = party {
                        #expect(
                            step.ignored != nil || step.violation?.error.code == .notAParty
                                || step.violation?.error.code == .outOfOrder, "\(label)")
                    }
                }
            }
        }
    }

    func party(_ sender: Sender, for call: CallID, in harness: TableHarness) -> Party {
        switch sender {
        case .caller: return .session(harness.sessions["work"]!)
        case .target:
            // The session the exec went to; before there is one, the would-be target's domain (vault).
            return .session(harness.table.calls[call]?.state.targetSession ?? harness.sessions["vault"]!)
        case .stranger: return .session(harness.sessions["rogue"]!)
        case .policy: return .policy
        case .askAgent: return .askAgent
        case .toolstack: return .toolstack
        case .deadline: return .deadline
        }
    }

    func event(_ probe: Probe, for call: CallID, in harness: inout TableHarness) -> CallEvent {
        let entry = harness.table.calls[call]!
        switch probe {
        case .cancel: return .cancel(entry.requestID)
        case .done: return .done(CallReport(call: call, exitCode: 0, bytesIn: 1, bytesOut: 2))
        case .sessionClosed: return .sessionClosed
        case .allow: return .decided(call, Verdict(.allow(harness.plan("vault"))))
        case .refuse:
            return .decided(
                call, Verdict(.refuse(reason: "denied", code: .refusedByPolicy, message: "Request refused")))
        case .ask: return .decided(call, Verdict(.ask(harness.question)))
        case .answerYes: return .answered(call, harness.plan("vault"))
        case .answerNo: return .answered(call, nil)
        case .prepared:
            return .prepared(
                call, PreparedTarget(id: harness.ids["sleepy"]!, name: try! DomainName("sleepy"), isDisposable: false))
        case .preparationFailed: return .preparationFailed(call, SluiceError(.toolstackFailed, "no"))
        case .tick:
            harness.advance(.seconds(60))
            return .tick
        }
    }

    @Test("a target's agent connecting brokers only the calls waiting for that domain")
    func agentConnects() {
        var harness = TableHarness()
        let waiting = harness.call(in: .awaitingAgent)
        let other = harness.call(in: .deciding)
        harness.open("sleepy")
        #expect(harness.state(waiting) == .brokered)
        #expect(harness.state(other) == .deciding)
    }
}
