import PropertyBased
import SluiceCalls
import SluiceWire
import Testing

/// Random interleavings of messages from random senders (the calls' own parties, strangers, and the daemon's parts,
/// late or not), with the call table's invariants checked after every step.
@Suite("Random interleavings keep the call table's invariants")
struct CallTablePropertyTests {
    @Test("calls end once, only by their parties or the daemon, within every limit")
    func invariants() async {
        // New interleavings on every run; the invariants must hold on each.
        await propertyCheck(count: 200, input: Gen.uint64().array(of: 20...400)) { operations in
            var driver = Driver()
            for (index, code) in operations.enumerated() {
                driver.perform(code)
                if let broken = driver.broken {
                    Issue.record("after operation \(index) (\(driver.lastOperation)): \(broken)")
                    return
                }
            }
        }
    }

    /// The same driver on fixed interleavings, which reach every kind of end and refusal: random runs reach the rarer
    /// ones most of the time, not every time (one run of 200 had no too-many-calls), and a check that they do must not
    /// depend on luck.
    @Test("fixed interleavings keep the invariants and reach every end and every refusal")
    func coverage() {
        var coverage: [String: Int] = [:]
        var random = SplitMix64(state: 20_261_207)
        for _ in 0..<200 {
            let operations = (0..<Int(20 + random.next() % 381)).map { _ in random.next() }
            var driver = Driver()
            for (index, code) in operations.enumerated() {
                driver.perform(code)
                if let broken = driver.broken {
                    Issue.record("after operation \(index) (\(driver.lastOperation)): \(broken)")
                    return
                }
            }
            coverage.merge(driver.coverage, uniquingKeysWith: +)
        }
        // The interleavings reached every kind of end and every kind of refusal, or the checks above proved little.
        for kind in [
            "ended:report", "ended:target-gone", "ended:target-silent", "refused:cancelled", "refused:caller-gone",
            "refused:too-many-calls", "refused:too-many-asks", "refused:too-many-disposables", "refused:denied-by-user",
            "refused:target-not-running", "violation:not-a-party", "violation:out-of-order", "destroyed", "late",
        ] {
            #expect(coverage[kind, default: 0] > 0, "no \(kind) in any run: \(coverage)")
        }
    }

    @Test("the driver's checks fail on a table that lets a stranger end a call")
    func driverNoticesForgedEnd() {
        // A stranger's done the table refused is checked as a violation; here the driver is told the step ended a
        // call that the sender took no part in, as a table with that bug would.
        var driver = Driver()
        driver.perform(0)  // a request from work
        let call = driver.harness.table.calls.keys.first!
        let before = driver.harness.table
        driver.lastKind = "done"
        driver.check(
            step: CallStep(), before: before, party: .session(driver.harness.sessions["rogue"]!),
            endedNow: [call])
        #expect(driver.broken != nil)
    }
}

/// Performs random operations on a table and checks its invariants after each.
struct Driver {
    var harness = TableHarness(limits: Self.limits, seed: 99, open: ["dom0", "work", "vault", "rogue"])
    var broken: String?
    var lastOperation = ""
    /// The kind of the last domain message: done, cancel, closed, or another.
    var lastKind = ""
    /// Calls that had a `decided` line, and how many `ended` lines each got.
    var decided: Set<CallID> = []
    var endedLines: [CallID: Int] = [:]
    /// Every call ever seen, as last seen (for late and forged reports).
    var seen: [CallID: Call] = [:]
    var disposableOwner: [DomainID: CallID] = [:]
    var nextDisposable: UInt16 = 100
    var names: [DomainID: String] = [:]
    /// How many steps of each kind happened, to show the runs reach every path.
    var coverage: [String: Int] = [:]

    static let limits: CallLimits = {
        var limits = CallLimits()
        limits.callsPerDomain = 3
        limits.callsTotal = 5
        limits.pendingAsksPerDomain = 2
        limits.pendingAsksTotal = 3
        limits.disposablesPerDomain = 1
        limits.disposablesTotal = 2
        limits.requestsPerSecond = 50
        limits.rememberedEndedCalls = 8
        return limits
    }()

    init() {
        for (name, id) in harness.ids { names[id] = name }
    }

    mutating func perform(_ code: UInt64) {
        var random = code
        func pick(_ count: Int) -> Int {
            defer { random /= UInt64(max(count, 1)) }
            return Int(random % UInt64(max(count, 1)))
        }
        let before = harness.table
        let openSessions = harness.sessions.values.filter { harness.table.session($0) != nil }.sorted()
        let callIDs = harness.table.calls.keys.sorted()
        let anyCall: CallID? = {
            let choice = pick(4)
            if choice < 2, !callIDs.isEmpty { return callIDs[pick(callIDs.count)] }
            if choice == 2, !seen.isEmpty { return seen.keys.sorted()[pick(seen.count)] }
            return CallID(rawValue: UInt64(pick(1 << 20)) + 1)
        }()
        var party: Party = .deadline
        var step = CallStep()
        lastKind = ""
        switch pick(10) {
        case 0, 1:
            let name = ["work", "vault", "rogue", "dom0"][pick(4)]
            guard let session = harness.sessions[name], harness.table.session(session) != nil else { return }
            let target = ["vault", "work", "dom0", "sleepy", "@dispvm"][pick(5)]
            let reuse = pick(8) == 0
            let id =
                reuse
                ? RequestID(rawValue: UInt64(pick(Int(harness.nextRequest))) + 1)!
                : RequestID(rawValue: harness.nextRequest)!
            if !reuse { harness.nextRequest += 1 }
            lastOperation = "request \(id) from \(name) to \(target)"
            party = .session(session)
            step = harness.step(
                .request(
                    CallRequest(id: id, call: try! ServiceCall(parsing: "test.Echo"), target: try! TargetName(target))),
                from: party)
        case 2:
            let deciding = callIDs.filter { harness.table.calls[$0]?.state == .deciding }
            guard !deciding.isEmpty else { return }
            let call = deciding[pick(deciding.count)]
            let verdict: Verdict
            switch pick(5) {
            case 0: verdict = Verdict(.refuse(reason: "denied", code: .refusedByPolicy, message: "Request refused"))
            case 1: verdict = Verdict(.ask(harness.question))
            case 2: verdict = Verdict(.allow(.disposable(template: try! DomainName("work-dvm"))))
            case 3: verdict = Verdict(.allow(.unresolvable(name: "@dispvm", reason: "no-disposable-template")))
            default: verdict = Verdict(.allow(randomPlan(pick(5), autostart: pick(2) == 0)))
            }
            lastOperation = "verdict \(verdict.action) for \(call)"
            party = .policy
            step = harness.step(.decided(call, verdict), from: party)
        case 3:
            guard let call = anyCall else { return }
            let plan = pick(3) == 0 ? nil : randomPlan(pick(5), autostart: true)
            lastOperation = "answer \(String(describing: plan)) for \(call)"
            party = .askAgent
            step = harness.step(.answered(call, plan), from: party)
        case 4:
            guard let call = anyCall else { return }
            party = .toolstack
            if pick(3) == 0 {
                lastOperation = "toolstack failure for \(call)"
                step = harness.step(.preparationFailed(call, SluiceError(.toolstackFailed, "no")), from: party)
            } else if case .disposable? = harness.table.calls[call]?.plan {
                let id = DomainID(rawValue: nextDisposable)!
                nextDisposable += 1
                names[id] = "disp\(id.rawValue)"
                lastOperation = "disposable \(id) made for \(call)"
                step = harness.step(
                    .prepared(
                        call, PreparedTarget(id: id, name: try! DomainName("disp\(id.rawValue)"), isDisposable: true)),
                    from: party)
            } else {
                let target = harness.table.calls[call]?.targetDomain ?? harness.ids["sleepy"]!
                lastOperation = "domain \(target) started for \(call)"
                step = harness.step(
                    .prepared(
                        call,
                        PreparedTarget(
                            id: target, name: try! DomainName(names[target] ?? "sleepy"), isDisposable: false)),
                    from: party)
            }
        case 5:
            guard !openSessions.isEmpty, let call = anyCall else { return }
            let session = openSessions[pick(openSessions.count)]
            party = .session(session)
            lastOperation = "done \(call) from \(session)"
            lastKind = "done"
            step = harness.step(
                .done(CallReport(call: call, exitCode: UInt8(pick(256)), bytesIn: 1, bytesOut: 1)), from: party)
        case 6:
            guard !openSessions.isEmpty else { return }
            let session = openSessions[pick(openSessions.count)]
            let mine = callIDs.compactMap { harness.table.calls[$0] }.filter { pick(2) == 0 || $0.caller == session }
            let id =
                mine.isEmpty
                ? RequestID(rawValue: UInt64(pick(Int(harness.nextRequest) + 5)) + 1)!
                : mine[pick(mine.count)].requestID
            party = .session(session)
            lastOperation = "cancel \(id) from \(session)"
            lastKind = "cancel"
            step = harness.step(.cancel(id), from: party)
        case 7:
            // A domain's agent goes or comes (a disposable's agent connects once it exists).
            let candidates = Array(names.keys).sorted()
            let domain = candidates[pick(candidates.count)]
            if let session = harness.table.liveSession(of: domain) {
                party = .session(session)
                lastOperation = "channel of \(domain) closes"
                lastKind = "closed"
                step = harness.step(.sessionClosed, from: party)
            } else {
                if domain.rawValue >= 100 && disposableOwner[domain] == nil { return }
                lastOperation = "agent of \(domain) connects"
                let (session, effects) = harness.table.openSession(
                    domain: domain, name: try! DomainName(names[domain]!), now: harness.now)
                harness.sessions[names[domain]!] = session
                harness.effects += effects
                step = CallStep(effects: effects)
                party = .session(session)
            }
        default:
            harness.advance(.milliseconds(Int64(pick(12_000))))
            lastOperation = "time passes to \(harness.now)"
            party = .deadline
            step = harness.step(.tick, from: party)
        }
        let ended = Set(before.calls.keys).subtracting(harness.table.calls.keys)
        check(step: step, before: before, party: party, endedNow: ended)
    }

    func randomPlan(_ choice: Int, autostart: Bool) -> TargetPlan {
        let name = ["vault", "work", "dom0", "sleepy", "rogue"][choice]
        return .domain(name: try! DomainName(name), id: harness.ids[name], autostart: autostart)
    }

    /// Checks every invariant after one step.
    mutating func check(step: CallStep, before: CallTable, party: Party, endedNow: Set<CallID>) {
        let table = harness.table
        func fail(_ message: String) { if broken == nil { broken = message } }
        // A violation or a stale event changes nothing.
        if step.violation != nil || step.ignored != nil {
            if table.calls != before.calls { fail("a refused step changed calls") }
        }
        for (id, call) in table.calls { seen[id] = call }
        // Only a call's parties, the daemon's parts or time end it: its target's report, its caller's cancel, the
        // channel of one of them closing.
        if case .session(let session) = party {
            for id in endedNow {
                guard let call = before.calls[id] else { continue }
                let role = before.role(of: session, in: call)
                let allowed: Set<CallRole> =
                    switch lastKind {
                    case "done": [.target]
                    case "cancel": [.caller]
                    case "closed": [.caller, .target]
                    default: []
                    }
                if !allowed.contains(role) { fail("\(lastKind) from \(session), its \(role), ended call \(id)") }
            }
        }
        if let violation = step.violation { coverage["violation:\(violation.error.code.name)", default: 0] += 1 }
        if let ignored = step.ignored, ignored.contains("late") { coverage["late", default: 0] += 1 }
        for effect in step.effects {
            switch effect {
            case .audit(let record, .refused): coverage["refused:\(record.reason ?? "?")", default: 0] += 1
            case .audit(let record, .ended): coverage["ended:\(record.reason ?? "report")", default: 0] += 1
            default: break
            }
            if case .destroyDisposable = effect { coverage["destroyed", default: 0] += 1 }
        }
        for effect in step.effects {
            switch effect {
            case .audit(let record, .decided):
                let id = CallID(rawValue: record.call)!
                if decided.contains(id) { fail("a second decided line for \(id)") }
                decided.insert(id)
            case .audit(let record, .ended):
                let id = CallID(rawValue: record.call)!
                endedLines[id, default: 0] += 1
                if !decided.contains(id) { fail("an ended line for \(id), which was never decided") }
                if endedLines[id]! > 1 { fail("call \(id) ended twice") }
                if !endedNow.contains(id) { fail("an ended line for \(id), which is still in the table") }
            case .destroyDisposable(let domain):
                if let owner = disposableOwner[domain], table.calls[owner] != nil {
                    fail("disposable \(domain) destroyed while its call \(owner) runs")
                }
            default: break
            }
        }
        for id in endedNow where decided.contains(id) && endedLines[id] != 1 {
            fail("decided call \(id) left the table without one ended line")
        }
        for (id, call) in table.calls {
            if let disposable = call.disposable { disposableOwner[disposable] = id }
        }
        // Every limit holds, and the counters agree with the calls.
        var perDomain: [DomainID: Int] = [:]
        for call in table.calls.values where call.isAdmitted { perDomain[call.source, default: 0] += 1 }
        if perDomain.values.reduce(0, +) != table.admittedTotal { fail("the total in flight disagrees with the calls") }
        if table.admittedTotal > Self.limits.callsTotal { fail("over the total limit") }
        for (domain, count) in perDomain {
            if count > Self.limits.callsPerDomain { fail("\(domain) over its limit") }
            if table.inFlight(from: domain) != count { fail("\(domain)'s count disagrees with its calls") }
        }
        if table.asksTotal > Self.limits.pendingAsksTotal { fail("over the total of asks") }
        if table.disposableSlotsTotal > Self.limits.disposablesTotal { fail("over the total of disposables") }
        for domain in names.keys {
            if table.pendingAsks(from: domain) > Self.limits.pendingAsksPerDomain { fail("\(domain) over its asks") }
            if table.disposableSlots(of: domain) > Self.limits.disposablesPerDomain {
                fail("\(domain) over its disposables")
            }
        }
    }
}

/// A repeatable sequence of 64-bit numbers (SplitMix64), for interleavings that are the same on every run.
struct SplitMix64 {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}
