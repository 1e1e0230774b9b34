import SluiceCalls
import SluiceWire
import Testing

@Suite("The call table brokers calls and refuses what a party may not say")
struct CallTableTests {
    @Test("an allowed call is brokered to both ends and ends with its target's report")
    func brokeredAndReported() throws {
        var harness = TableHarness()
        let (call, request) = harness.request(from: "work")
        let id = try #require(call)
        harness.allow(id, harness.plan("vault"))
        #expect(harness.state(id) == .brokered)
        #expect(harness.table.inFlight(from: harness.ids["work"]!) == 1)
        guard case .connect(let connect)? = harness.sent(to: "work").last else {
            Issue.record("no connect")
            return
        }
        #expect(connect.id == request && connect.call == id && connect.rendezvous.domain == harness.ids["vault"])
        guard case .exec(let exec)? = harness.sent(to: "vault").last else {
            Issue.record("no exec")
            return
        }
        #expect(exec.call == id && exec.source.rawValue == "work" && exec.rendezvous.port == connect.rendezvous.port)
        harness.advance(.milliseconds(3))
        let step = harness.step(.done(CallReport(call: id, exitCode: 7, bytesIn: 5, bytesOut: 6)), from: "vault")
        #expect(step.violation == nil)
        #expect(harness.table.calls.isEmpty && harness.table.inFlight(from: harness.ids["work"]!) == 0)
        let lines = harness.audit
        #expect(lines.map(\.event) == [.decided, .ended])
        #expect(lines.last?.record.exitCode == 7 && lines.last?.record.call == id.rawValue)
        #expect(lines.last?.record.duration == .milliseconds(3))
    }

    @Test("a done from a third domain is a violation and changes nothing")
    func forgedDoneFromThirdDomain() throws {
        var harness = TableHarness()
        let id = harness.call(in: .brokered)
        let before = harness.table
        let step = harness.step(.done(CallReport(call: id, exitCode: 0, bytesIn: 0, bytesOut: 0)), from: "rogue")
        #expect(step.violation?.error.code == .notAParty)
        #expect(step.violation?.domain.rawValue == "rogue")
        #expect(step.effects.isEmpty)
        #expect(harness.table == before)
    }

    @Test("a caller cannot end its own calls to lift its limit")
    func callerCannotReportItsOwnCalls() throws {
        var limits = CallLimits()
        limits.callsPerDomain = 3
        var harness = TableHarness(limits: limits)
        var calls: [CallID] = []
        for _ in 0..<3 { calls.append(harness.call(in: .brokered)) }
        for call in calls {
            let step = harness.step(.done(CallReport(call: call, exitCode: 0, bytesIn: 0, bytesOut: 0)), from: "work")
            #expect(step.violation?.error.code == .notAParty)
        }
        #expect(harness.table.inFlight(from: harness.ids["work"]!) == 3)
        let (fourth, _) = harness.request(from: "work")
        harness.allow(try #require(fourth), harness.plan("vault"))
        guard case .refused(let refusal)? = harness.sent(to: "work").last else {
            Issue.record("the fourth call was not refused")
            return
        }
        #expect(refusal.code == .tooManyCalls)
    }

    @Test("a call id that was never given is the same violation as a wrong sender")
    func unknownCallID() {
        var harness = TableHarness()
        _ = harness.call(in: .brokered)
        let before = harness.table
        let step = harness.step(
            .done(CallReport(call: CallID(rawValue: 1)!, exitCode: 0, bytesIn: 0, bytesOut: 0)), from: "vault")
        #expect(step.violation?.error.code == .notAParty)
        #expect(harness.table == before)
    }

    @Test("call ids are random, distinct and within the wire's range")
    func randomIDs() {
        var harness = TableHarness(
            limits: {
                var l = CallLimits()
                l.callsPerDomain = 200
                return l
            }())
        var ids: Set<CallID> = []
        for _ in 0..<100 { ids.insert(harness.call(in: .brokered)) }
        #expect(ids.count == 100)
        #expect(ids.allSatisfy { $0.rawValue >= 1 && $0.rawValue <= CallID.max })
        // Not a counter: ids 1...100 would all be below 2^32.
        #expect(ids.filter { $0.rawValue > UInt64(UInt32.max) }.count > 90)
    }

    @Test("a target whose channel closes ends its calls with 125 and their callers hear at once")
    func targetGone() throws {
        var harness = TableHarness()
        let id = harness.call(in: .brokered)
        harness.step(.sessionClosed, from: "vault")
        #expect(harness.table.calls.isEmpty)
        let ended = try #require(harness.audit.last)
        #expect(ended.event == .ended && ended.record.exitCode == 125 && ended.record.reason == "target-gone")
        #expect(harness.sent(to: "work").last == .cancel(id))
        // The target's next session may still report it once, late; a second report is a violation.
        harness.open("vault")
        let late = harness.step(.done(CallReport(call: id, exitCode: 0, bytesIn: 1, bytesOut: 1)), from: "vault")
        #expect(late.violation == nil && late.ignored != nil)
        let again = harness.step(.done(CallReport(call: id, exitCode: 0, bytesIn: 1, bytesOut: 1)), from: "vault")
        #expect(again.violation?.error.code == .notAParty)
    }

    @Test("a late report of a call the daemon ended is not accepted from another domain")
    func lateReportFromAnotherDomain() {
        var harness = TableHarness()
        let id = harness.call(in: .brokered)
        harness.step(.sessionClosed, from: "vault")
        let step = harness.step(.done(CallReport(call: id, exitCode: 0, bytesIn: 0, bytesOut: 0)), from: "rogue")
        #expect(step.violation?.error.code == .notAParty)
    }

    @Test("a cancel before the decision withdraws the request; the late verdict is stale")
    func cancelWhileDeciding() throws {
        var harness = TableHarness()
        let (call, request) = harness.request(from: "work")
        let id = try #require(call)
        harness.step(.cancel(request), from: "work")
        #expect(harness.table.calls.isEmpty)
        #expect(
            harness.sent(to: "work").last
                == .refused(Refusal(id: request, code: .cancelled, message: "the call was cancelled")))
        let late = harness.allow(id, harness.plan("vault"))
        #expect(late.ignored != nil && late.effects.isEmpty)
        #expect(harness.sent(to: "vault").isEmpty)
        #expect(harness.audit.map(\.record.reason) == ["cancelled"])
    }

    @Test("a cancel after brokering stops the target, whose report still ends the call")
    func cancelWhileBrokered() throws {
        var harness = TableHarness()
        let id = harness.call(in: .brokered)
        let request = harness.table.calls[id]!.requestID
        harness.step(.cancel(request), from: "work")
        #expect(harness.state(id) == .closing)
        #expect(harness.sent(to: "vault").last == .cancel(id))
        #expect(harness.table.inFlight(from: harness.ids["work"]!) == 1)
        harness.step(.done(CallReport(call: id, exitCode: 143, bytesIn: 0, bytesOut: 0)), from: "vault")
        #expect(harness.audit.last?.record.exitCode == 143)
        #expect(harness.audit.last?.record.reason == nil)
        // The caller's agent may cancel again when its client's link ends: late, not a violation.
        let late = harness.step(.cancel(request), from: "work")
        #expect(late.violation == nil)
    }

    @Test("a target that never reports after being told to stop loses the call at the deadline")
    func neverDone() throws {
        var harness = TableHarness()
        let id = harness.call(in: .closing)
        #expect(harness.table.nextDeadline == harness.now + harness.table.limits.doneDeadline)
        harness.advance(.seconds(9))
        harness.step(.tick, from: .deadline)
        #expect(harness.state(id) == .closing)
        harness.advance(.seconds(1))
        harness.step(.tick, from: .deadline)
        #expect(harness.table.calls.isEmpty)
        #expect(harness.table.inFlight(from: harness.ids["work"]!) == 0)
        #expect(harness.audit.last?.record.reason == "target-silent" && harness.audit.last?.record.exitCode == 125)
        let late = harness.step(.done(CallReport(call: id, exitCode: 0, bytesIn: 0, bytesOut: 0)), from: "vault")
        #expect(late.violation == nil)
    }

    @Test("a second cancel of a call being closed is out of order")
    func secondCancel() {
        var harness = TableHarness()
        let id = harness.call(in: .closing)
        let before = harness.table
        let step = harness.step(.cancel(harness.table.calls[id]!.requestID), from: "work")
        #expect(step.violation?.error.code == .outOfOrder)
        #expect(harness.table == before)
    }

    @Test("a cancel of a request the channel never made is a violation; of one that ended, late")
    func cancelOfUnknownRequest() {
        var harness = TableHarness()
        let id = harness.call(in: .brokered)
        let request = harness.table.calls[id]!.requestID
        let forged = harness.step(.cancel(RequestID(rawValue: 900)!), from: "work")
        #expect(forged.violation?.error.code == .notAParty)
        let other = harness.step(.cancel(request), from: "rogue")
        #expect(other.violation?.error.code == .notAParty)
        #expect(harness.state(id) == .brokered)
        harness.step(.done(CallReport(call: id, exitCode: 0, bytesIn: 0, bytesOut: 0)), from: "vault")
        let late = harness.step(.cancel(request), from: "work")
        #expect(late.violation == nil && late.ignored != nil)
    }

    @Test("a request id still open on its channel cannot be used again")
    func duplicateRequestID() {
        var harness = TableHarness()
        _ = harness.call(in: .brokered)
        let before = harness.table
        let request = CallRequest(
            id: RequestID(rawValue: 1)!, call: try! ServiceCall(parsing: "test.Echo"), target: try! TargetName("vault"))
        let step = harness.step(.request(request), from: "work")
        #expect(step.violation?.error.code == .outOfOrder)
        #expect(harness.table == before)
    }

    @Test("a caller whose channel closes drops its undecided requests, but its brokered calls go on")
    func callerGone() {
        var harness = TableHarness()
        let asking = harness.call(in: .asking)
        let brokered = harness.call(in: .brokered)
        harness.step(.sessionClosed, from: "work")
        #expect(harness.state(asking) == nil)
        #expect(harness.state(brokered) == .brokered)
        #expect(harness.audit.contains { $0.record.reason == "caller-gone" })
        // The question is still on the screen: its slot is held until the answer comes.
        #expect(harness.table.pendingAsks(from: harness.ids["work"]!) == 1)
        let answer = harness.step(.answered(asking, harness.plan("vault")), from: .askAgent)
        #expect(answer.effects.isEmpty)
        #expect(harness.table.pendingAsks(from: harness.ids["work"]!) == 0)
        harness.step(.done(CallReport(call: brokered, exitCode: 0, bytesIn: 0, bytesOut: 0)), from: "vault")
        #expect(harness.table.calls.isEmpty)
    }

    @Test("questions are limited per domain, and cancelling does not free a question still on the screen")
    func askLimit() throws {
        var harness = TableHarness()
        var asking: [CallID] = []
        for _ in 0..<4 { asking.append(harness.call(in: .asking)) }
        let (fifth, _) = harness.request(from: "work")
        harness.step(.decided(try #require(fifth), Verdict(.ask(harness.question))), from: .policy)
        guard case .refused(let refusal)? = harness.sent(to: "work").last else {
            Issue.record("the fifth ask was not refused")
            return
        }
        #expect(refusal.code == .tooManyAsks)
        harness.step(.cancel(harness.table.calls[asking[0]]!.requestID), from: "work")
        let (sixth, _) = harness.request(from: "work")
        harness.step(.decided(try #require(sixth), Verdict(.ask(harness.question))), from: .policy)
        #expect(harness.lastRefusal(to: "work") == .tooManyAsks)
        harness.step(.answered(asking[0], nil), from: .askAgent)
        #expect(harness.call(in: .asking) != asking[0])
        #expect(harness.table.pendingAsks(from: harness.ids["work"]!) == 4)
    }

    @Test("an answer allows the call on the chosen target; no answer denies it")
    func askAnswered() {
        var harness = TableHarness()
        let yes = harness.call(in: .asking)
        harness.step(.answered(yes, harness.plan("vault")), from: .askAgent)
        #expect(harness.state(yes) == .brokered)
        #expect(harness.audit.last?.record.decision == "ask-allowed")
        let no = harness.call(in: .asking)
        harness.step(.answered(no, nil), from: .askAgent)
        #expect(harness.state(no) == nil)
        #expect(harness.audit.last?.record.reason == "denied-by-user")
    }

    @Test("a disposable is made, served, used, and destroyed only after its own call ended")
    func disposable() throws {
        var harness = TableHarness()
        let (call, _) = harness.request(from: "work", target: "@dispvm")
        let id = try #require(call)
        harness.allow(id, .disposable(template: try DomainName("work-dvm")))
        #expect(
            harness.effects.last
                == .createDisposable(id, template: try DomainName("work-dvm"), source: try DomainName("work")))
        let disposable = DomainID(rawValue: 40)!
        harness.step(
            .prepared(id, PreparedTarget(id: disposable, name: try DomainName("disp1"), isDisposable: true)),
            from: .toolstack)
        #expect(harness.state(id) == .awaitingAgent)
        let (session, opened) = harness.table.openSession(
            domain: disposable, name: try DomainName("disp1"), now: harness.now)
        harness.effects += opened
        harness.sessions["disp1"] = session
        #expect(harness.state(id) == .brokered)
        let forged = harness.step(.done(CallReport(call: id, exitCode: 0, bytesIn: 0, bytesOut: 0)), from: "rogue")
        #expect(forged.violation != nil && !forged.effects.contains(.destroyDisposable(disposable)))
        let done = harness.step(.done(CallReport(call: id, exitCode: 0, bytesIn: 0, bytesOut: 0)), from: "disp1")
        #expect(done.effects.count == 2)
        guard case .audit(_, .ended) = done.effects[0], case .destroyDisposable(disposable) = done.effects[1] else {
            Issue.record("expected the ended line, then the destroy: \(done.effects)")
            return
        }
        #expect(harness.table.disposableSlots(of: harness.ids["work"]!) == 0)
        #expect(harness.audit.last?.record.target == "disp1")
    }

    @Test("disposables are limited per domain")
    func disposableLimit() throws {
        var limits = CallLimits()
        limits.disposablesPerDomain = 1
        var harness = TableHarness(limits: limits)
        let first = try #require(harness.request(from: "work", target: "@dispvm").call)
        harness.allow(first, .disposable(template: try DomainName("work-dvm")))
        let second = try #require(harness.request(from: "work", target: "@dispvm").call)
        harness.allow(second, .disposable(template: try DomainName("work-dvm")))
        guard case .refused(let refusal)? = harness.sent(to: "work").last else {
            Issue.record("the second disposable was not refused")
            return
        }
        #expect(refusal.code == .tooManyDisposables)
        #expect(harness.table.inFlight(from: harness.ids["work"]!) == 1)
    }

    @Test("a disposable made for a call that was cancelled meanwhile is destroyed at once, and its slot freed")
    func disposableForCancelledCall() throws {
        var harness = TableHarness()
        let (call, request) = harness.request(from: "work", target: "@dispvm")
        let id = try #require(call)
        harness.allow(id, .disposable(template: try DomainName("work-dvm")))
        harness.step(.cancel(request), from: "work")
        #expect(harness.table.disposableSlots(of: harness.ids["work"]!) == 1)
        let disposable = DomainID(rawValue: 41)!
        let step = harness.step(
            .prepared(id, PreparedTarget(id: disposable, name: try DomainName("disp2"), isDisposable: true)),
            from: .toolstack)
        #expect(step.effects == [.destroyDisposable(disposable)])
        #expect(harness.table.disposableSlots(of: harness.ids["work"]!) == 0)
    }

    @Test("a halted target is started, and the call is refused if its agent does not connect in time")
    func autostart() throws {
        var harness = TableHarness()
        let id = harness.call(in: .starting)
        #expect(harness.effects.last == .startDomain(id, try DomainName("sleepy")))
        harness.step(
            .prepared(
                id, PreparedTarget(id: harness.ids["sleepy"]!, name: try DomainName("sleepy"), isDisposable: false)),
            from: .toolstack)
        harness.advance(harness.table.limits.agentStartTimeout)
        harness.step(.tick, from: .deadline)
        #expect(harness.state(id) == nil)
        #expect(harness.audit.last?.record.reason == "target-not-running")
        // In time, the call is brokered when the agent connects.
        let second = harness.call(in: .awaitingAgent)
        harness.open("sleepy")
        #expect(harness.state(second) == .brokered)
        // autostart=no refuses at once; a failed start refuses too.
        let third = try #require(harness.request(from: "work", target: "sleepy").call)
        harness.step(.sessionClosed, from: "sleepy")
        harness.allow(third, harness.plan("sleepy", autostart: false))
        #expect(harness.state(third) == nil)
        let fourth = harness.call(in: .starting)
        harness.step(.preparationFailed(fourth, SluiceError(.toolstackFailed, "no")), from: .toolstack)
        #expect(harness.state(fourth) == nil)
        #expect(harness.audit.last?.record.reason == "target-not-running")
    }

    @Test("a halted domain with no id yet (on Xen) is started, and brokered when its agent connects under its new id")
    func autostartWithoutID() throws {
        var harness = TableHarness()
        let id = try #require(harness.request(from: "work", target: "sleepy").call)
        let sleepy = try DomainName("sleepy")
        harness.allow(id, .domain(name: sleepy, id: nil, autostart: true))
        #expect(harness.effects.last == .startDomain(id, sleepy))
        let started = DomainID(rawValue: 40)!
        harness.step(.prepared(id, PreparedTarget(id: started, name: sleepy, isDisposable: false)), from: .toolstack)
        #expect(harness.state(id) == .awaitingAgent)
        let (session, opened) = harness.table.openSession(domain: started, name: sleepy, now: harness.now)
        harness.effects += opened
        #expect(harness.state(id) == .brokered)
        #expect(harness.table.calls[id]?.state.targetSession == session)
        // Without autostart, a domain with no id cannot run.
        let refused = try #require(harness.request(from: "work", target: "sleepy").call)
        harness.allow(refused, .domain(name: sleepy, id: nil, autostart: false))
        #expect(harness.audit.last?.record.reason == "target-not-running")
    }

    @Test("requests over the rate are refused if the ring has room, the channel paused, and not audited")
    func rateLimited() {
        var limits = CallLimits()
        limits.requestsPerSecond = 2
        var harness = TableHarness(limits: limits)
        _ = harness.request(from: "work")
        _ = harness.request(from: "work")
        let (third, request) = harness.request(from: "work")
        #expect(third == nil)
        #expect(
            harness.effects.contains(
                .sendIfRoom(
                    .refused(Refusal(id: request, code: .rateLimited, message: "over 2 requests a second")),
                    to: harness.sessions["work"]!)))
        #expect(harness.effects.contains(.pauseReading(harness.sessions["work"]!, .milliseconds(100))))
        #expect(harness.audit.isEmpty)
        harness.advance(.seconds(1))
        #expect(harness.request(from: "work").call != nil)
    }

    @Test("a request over the size limit is refused with its own code")
    func requestTooLarge() {
        var limits = CallLimits()
        limits.requestBytes = 20
        var harness = TableHarness(limits: limits)
        let (call, _) = harness.request(from: "work", argument: String(repeating: "a", count: 30))
        #expect(call == nil)
        #expect(harness.audit.last?.record.reason == "request-too-large")
    }

    @Test("calls in flight are limited in all")
    func totalLimit() throws {
        var limits = CallLimits()
        limits.callsTotal = 2
        var harness = TableHarness(limits: limits)
        _ = harness.call(in: .brokered)
        let second = try #require(harness.request(from: "rogue").call)
        harness.allow(second, harness.plan("vault"))
        let third = try #require(harness.request(from: "vault", target: "work").call)
        harness.allow(third, harness.plan("work"))
        #expect(harness.state(third) == nil)
        #expect(harness.audit.last?.record.reason == "too-many-calls")
        #expect(harness.table.admittedTotal == 2)
    }

    @Test("a call into the admin domain has the admin domain serve the data channel")
    func callIntoAdminDomain() throws {
        var harness = TableHarness()
        let id = try #require(harness.request(from: "work", target: "dom0").call)
        harness.allow(id, harness.plan("dom0"))
        guard case .connect(let connect)? = harness.sent(to: "work").last,
            case .exec(let exec)? = harness.sent(to: "dom0").last
        else {
            Issue.record("not brokered")
            return
        }
        #expect(connect.rendezvous.role == .client && exec.rendezvous.role == .server)
    }

    @Test("an event a domain cannot send, or a party cannot cause, changes nothing")
    func wrongKindOfParty() {
        var harness = TableHarness()
        let id = harness.call(in: .deciding)
        let before = harness.table
        let forged = harness.step(.decided(id, Verdict(.allow(harness.plan("vault")))), from: "work")
        #expect(forged.violation?.error.code == .outOfOrder)
        let misrouted = harness.step(.answered(id, harness.plan("vault")), from: .policy)
        #expect(misrouted.ignored != nil)
        #expect(harness.table == before)
    }
}
