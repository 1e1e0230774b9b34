import SluiceWire

/// The caller's side of the table: requests, cancels, verdicts, answers and admission.
extension CallTable {
    /// A request from `session`, which becomes its caller.
    mutating func receive(_ request: CallRequest, from sessionID: SessionID, now: MonotonicTime) -> CallStep {
        guard var session = sessions[sessionID] else { return .ignored("a request on a session that is not open") }
        guard session.open[request.id] == nil else {
            return violation(sessionID, .outOfOrder, "request \(request.id) is already open on this channel")
        }
        session.highestRequest = max(session.highestRequest, request.id.rawValue)
        let name = session.info.name
        guard session.rate.admit(now: now) else {
            // Not audited one by one: a storm would fill the disk. Refused only if the ring has room, then the channel
            // is left unread for a while, so the storm waits on its own full ring.
            var effects: [CallEffect] = [
                .sendIfRoom(
                    .refused(
                        Refusal(
                            id: request.id, code: .rateLimited,
                            message: "over \(limits.requestsPerSecond) requests a second")),
                    to: sessionID),
                .pauseReading(sessionID, limits.rateLimitPause),
            ]
            if let count = session.rateLog.count(now: now) {
                effects.append(
                    .log(
                        LogLine(
                            .warning,
                            "refused \(count) requests from \(name) since the last such line: over its rate limit of \(limits.requestsPerSecond) a second"
                        )))
            }
            sessions[sessionID] = session
            return CallStep(effects: effects)
        }
        var record = CallRecord(
            call: 0, source: name.rawValue, requestedTarget: request.target.rawValue, target: nil,
            service: request.call.service.rawValue, argument: request.call.argument.rawValue, decision: "deny")
        // SERVICE+ARG counted without building it.
        let size =
            request.call.service.rawValue.utf8.count + 1 + request.call.argument.rawValue.utf8.count
            + request.target.rawValue.utf8.count + (request.requestedSource?.rawValue.utf8.count ?? 0)
        guard size <= limits.requestBytes else {
            sessions[sessionID] = session
            record.reason = "request-too-large"
            return CallStep(effects: [
                .log(
                    LogLine(.notice, "refused a \(size)-byte request from \(name): over \(limits.requestBytes) bytes")),
                .audit(record, .refused),
                .send(
                    .refused(
                        Refusal(
                            id: request.id, code: .requestTooLarge,
                            message: "the request is \(size) bytes, over the limit of \(limits.requestBytes)")),
                    to: sessionID),
            ])
        }
        var id = ids.next()
        while calls[id] != nil || tombstones[id] != nil || outstanding[id] != nil { id = ids.next() }
        session.open[request.id] = id
        sessions[sessionID] = session
        calls[id] = Call(
            id: id, state: .deciding, caller: sessionID, source: session.info.domain, sourceName: name,
            requestID: request.id, request: request, record: record, started: now)
        return CallStep(effects: [
            .evaluate(id, PolicyQuestion(source: session.info.domain, sourceName: name, request: request))
        ])
    }

    /// `session` cancels request `id`: before it is a call the request is withdrawn; once brokered, the caller's side
    /// has ended and the target is told to stop.
    mutating func cancel(_ id: RequestID, from sessionID: SessionID, now: MonotonicTime) -> CallStep {
        guard let session = sessions[sessionID] else { return .ignored("a cancel on a session that is not open") }
        guard let callID = session.open[id], let call = calls[callID] else {
            if id.rawValue <= session.highestRequest { return .ignored("a cancel of request \(id), which has ended") }
            return violation(sessionID, .notAParty, "cancels request \(id), which this channel never made")
        }
        switch call.state {
        case .deciding, .asking, .starting, .awaitingAgent:
            return CallStep(
                effects: end(
                    callID, .refused(reason: "cancelled", code: .cancelled, message: "the call was cancelled"),
                    now: now))
        case .brokered(let target):
            let deadline = now + limits.doneDeadline
            calls[callID]?.state = .closing(target: target, deadline: deadline)
            deadlines[callID] = deadline
            return CallStep(effects: [.send(.cancel(callID), to: target)])
        case .closing:
            return violation(sessionID, .outOfOrder, "cancels request \(id) a second time")
        }
    }

    /// The policy's verdict on a call being decided.
    mutating func decided(_ callID: CallID, _ verdict: Verdict, now: MonotonicTime) -> CallStep {
        guard var call = calls[callID], call.state == .deciding else {
            return .ignored("a verdict for no call deciding")
        }
        call.record.rule = verdict.rule
        if let requested = verdict.requestedTarget { call.record.requestedTarget = requested }
        call.user = verdict.user
        switch verdict.action {
        case .refuse(let reason, let code, let message):
            calls[callID] = call
            return CallStep(effects: end(callID, .refused(reason: reason, code: code, message: message), now: now))
        case .ask(let question):
            call.record.decision = "ask"
            calls[callID] = call
            guard asksTotal < limits.pendingAsksTotal, asks[call.source, default: 0] < limits.pendingAsksPerDomain
            else {
                var effects: [CallEffect] = [
                    .log(LogLine(.notice, "refused an ask from \(call.sourceName): too many questions are waiting"))
                ]
                effects += end(
                    callID,
                    .refused(
                        reason: "too-many-asks", code: .tooManyAsks,
                        message: "too many questions are waiting for the user"), now: now)
                return CallStep(effects: effects)
            }
            asks[call.source, default: 0] += 1
            asksTotal += 1
            calls[callID]?.state = .asking
            return CallStep(effects: [.ask(callID, question)])
        case .allow(let plan):
            call.record.decision = "allow"
            calls[callID] = call
            return CallStep(effects: admit(callID, plan, now: now))
        }
    }

    /// The user's answer to an ask. The question's slot is free again whether or not its call still waits.
    mutating func answered(_ callID: CallID, _ plan: TargetPlan?, now: MonotonicTime) -> CallStep {
        guard let call = calls[callID], call.state == .asking else {
            guard case .ask(let source)? = outstanding[callID] else { return .ignored("an answer for no question") }
            outstanding[callID] = nil
            releaseAsk(source)
            return .ignored("an answer for call \(callID), which has ended")
        }
        releaseAsk(call.source)
        guard let plan else {
            return CallStep(
                effects: end(
                    callID, .refused(reason: "denied-by-user", code: .refusedByPolicy, message: "Request refused"),
                    now: now))
        }
        calls[callID]?.record.decision = "ask-allowed"
        return CallStep(effects: admit(callID, plan, now: now))
    }

    /// Admits an allowed call against the limits, then brokers it or has its target made ready. Admission comes
    /// first, so that a domain over its limit never makes the toolstack start or create anything.
    mutating func admit(_ callID: CallID, _ plan: TargetPlan, now: MonotonicTime) -> [CallEffect] {
        guard var call = calls[callID] else { return [] }
        call.record.target = plan.name
        call.plan = plan
        calls[callID] = call
        var overLimit: String?
        if admittedTotal >= limits.callsTotal {
            overLimit = "in all (\(limits.callsTotal))"
        } else if admitted[call.source, default: 0] >= limits.callsPerDomain {
            overLimit = "from this domain (\(limits.callsPerDomain))"
        }
        if let overLimit {
            return [
                .log(LogLine(.notice, "refused a call from \(call.sourceName): too many calls in flight \(overLimit)"))
            ]
                + end(
                    callID,
                    .refused(
                        reason: "too-many-calls", code: .tooManyCalls, message: "too many calls in flight \(overLimit)"),
                    now: now)
        }
        if case .disposable = plan {
            var over: String?
            if disposableSlotsTotal >= limits.disposablesTotal {
                over = "in all (\(limits.disposablesTotal))"
            } else if disposableSlots[call.source, default: 0] >= limits.disposablesPerDomain {
                over = "for this domain (\(limits.disposablesPerDomain))"
            }
            if let over {
                return [
                    .log(LogLine(.notice, "refused a disposable for \(call.sourceName): too many disposables \(over)"))
                ]
                    + end(
                        callID,
                        .refused(
                            reason: "too-many-disposables", code: .tooManyDisposables,
                            message: "too many disposables \(over)"), now: now)
            }
        }
        // A port no call in flight uses; there are far more ports than calls allowed in flight.
        var port = nextPort
        while ports.contains(port) { port = port == UInt16.max ? Self.firstPort : port + 1 }
        nextPort = port == UInt16.max ? Self.firstPort : port + 1
        ports.insert(port)
        call.port = VchanPort(rawValue: port)
        admitted[call.source, default: 0] += 1
        admittedTotal += 1
        switch plan {
        case .unresolvable(_, let reason):
            calls[callID] = call
            return end(callID, .refused(reason: reason, code: .refusedByPolicy, message: "Request refused"), now: now)
        case .domain(let name, let id, let autostart):
            call.targetName = name
            call.targetDomain = id
            calls[callID] = call
            if let id, let session = liveSessions[id] { return broker(callID, target: session) }
            // A domain with no id yet (on Xen, one that has never run) can still be started.
            guard autostart else { return end(callID, .targetNotRunning, now: now) }
            calls[callID]?.state = .starting
            return [.startDomain(callID, name)]
        case .disposable(let template):
            call.holdsDisposableSlot = true
            disposableSlots[call.source, default: 0] += 1
            disposableSlotsTotal += 1
            call.state = .starting
            calls[callID] = call
            return [.createDisposable(callID, template: template, source: call.sourceName)]
        }
    }

    mutating func releaseAsk(_ source: DomainID) {
        asks[source, default: 1] -= 1
        if asks[source] == 0 { asks[source] = nil }
        asksTotal -= 1
    }
}
