import SluiceWire

/// The target's side of the table: targets made ready, brokering, reports, channels closing and deadlines.
extension CallTable {
    /// The toolstack started the call's target or made its disposable.
    mutating func prepared(_ callID: CallID, _ target: PreparedTarget, now: MonotonicTime) -> CallStep {
        guard var call = calls[callID], call.state == .starting else {
            // The call ended while the toolstack worked: a disposable made for it goes at once.
            guard target.isDisposable else { return .ignored("a started domain for call \(callID), which has ended") }
            if case .creation(let source)? = outstanding.removeValue(forKey: callID) { releaseDisposableSlot(source) }
            return CallStep(effects: [.destroyDisposable(target.id)], ignored: nil)
        }
        call.targetDomain = target.id
        call.targetName = target.name
        if target.isDisposable {
            call.disposable = target.id
            call.record.target = target.name.rawValue
        }
        if let session = liveSessions[target.id] {
            calls[callID] = call
            return CallStep(effects: broker(callID, target: session))
        }
        let deadline = now + limits.agentStartTimeout
        call.state = .awaitingAgent(target.id, deadline: deadline)
        calls[callID] = call
        deadlines[callID] = deadline
        return CallStep()
    }

    /// The toolstack could not start the call's target or make its disposable.
    mutating func preparationFailed(_ callID: CallID, _ error: SluiceError, now: MonotonicTime) -> CallStep {
        guard let call = calls[callID], call.state == .starting else {
            if case .creation(let source)? = outstanding.removeValue(forKey: callID) { releaseDisposableSlot(source) }
            return .ignored("a toolstack failure for call \(callID), which has ended")
        }
        if call.holdsDisposableSlot {
            calls[callID]?.holdsDisposableSlot = false
            releaseDisposableSlot(call.source)
            return CallStep(
                effects: [.log(LogLine(.warning, "cannot make a disposable for \(call.sourceName): \(error)"))]
                    + end(
                        callID,
                        .refused(
                            reason: "disposable-failed", code: error.code,
                            message: "the disposable could not be created"), now: now))
        }
        return CallStep(
            effects: [
                .log(LogLine(.warning, "the toolstack did not start \(call.targetName?.rawValue ?? "?"): \(error)"))
            ]
                + end(callID, .targetNotRunning, now: now))
    }

    /// Sends `connect` to the caller and `exec` to the target: the two meet on a data channel the daemon never sees.
    mutating func broker(_ callID: CallID, target: SessionID) -> [CallEffect] {
        guard var call = calls[callID], let port = call.port, let targetDomain = call.targetDomain else { return [] }
        deadlines[callID] = nil
        call.state = .brokered(target: target)
        call.record.call = callID.rawValue
        calls[callID] = call
        // The admin domain serves every data channel it is part of; otherwise the caller serves.
        let targetServes = targetDomain == .admin && call.source != .admin
        let order = ExecOrder(
            call: callID, serviceCall: call.request.call, source: call.sourceName,
            requestedTarget: call.request.target, user: call.user,
            rendezvous: Rendezvous(domain: call.source, port: port, role: targetServes ? .server : nil))
        // Recorded before anything is sent: a call that runs always has its line. The caller serves the data
        // channel, so it hears first, and the target's agent rarely has to retry.
        return [
            .audit(call.record, .decided),
            .send(
                .connect(
                    ConnectOrder(
                        id: call.requestID, call: callID,
                        rendezvous: Rendezvous(domain: targetDomain, port: port, role: targetServes ? .client : nil))),
                to: call.caller),
            .send(.exec(order), to: target),
        ]
    }

    /// The target reports the call's end.
    mutating func done(_ report: CallReport, from sessionID: SessionID, now: MonotonicTime) -> CallStep {
        guard let session = sessions[sessionID] else { return .ignored("a report on a session that is not open") }
        guard let call = calls[report.call] else {
            // A call the daemon ended itself (its target's channel closed, or it did not report in time) may still be
            // reported, once, by a later session of the same target domain.
            if tombstones[report.call] == session.info.domain {
                tombstones[report.call] = nil
                return .ignored("a late report of call \(report.call), which the daemon had already ended")
            }
            return violation(
                sessionID, .notAParty, "reports the end of call \(report.call), which it is not the target of")
        }
        guard role(of: sessionID, in: call) == .target else {
            return violation(
                sessionID, .notAParty, "reports the end of call \(report.call), which it is not the target of")
        }
        return CallStep(effects: end(report.call, .reported(report), now: now))
    }

    /// A session's channel closed. Calls it was the target of end (125, `target-gone`) and their callers are told at
    /// once; requests it made that are not yet brokered are dropped. Calls it made that are brokered go on: the
    /// caller's client may still be serving their data channels, and their targets still report their ends.
    mutating func closeSession(_ sessionID: SessionID, now: MonotonicTime) -> CallStep {
        guard let session = sessions[sessionID] else { return .ignored("a session that is not open closed") }
        var effects: [CallEffect] = []
        var orphans = 0
        for callID in calls.keys.sorted() {
            guard let call = calls[callID] else { continue }
            if call.state.targetSession == sessionID {
                orphans += 1
                effects += end(callID, .endedByDaemon(reason: "target-gone"), now: now)
            } else if call.caller == sessionID {
                switch call.state {
                case .deciding, .asking, .starting, .awaitingAgent: effects += end(callID, .callerGone, now: now)
                case .brokered, .closing: break
                }
            }
        }
        sessions[sessionID] = nil
        if liveSessions[session.info.domain] == sessionID { liveSessions[session.info.domain] = nil }
        if orphans > 0 {
            effects.insert(
                .log(
                    LogLine(
                        .warning,
                        "the agent of \(session.info.name) went away with \(orphans) calls in flight: they end with 125"
                    )),
                at: 0)
        }
        return CallStep(effects: effects)
    }

    /// Ends every call whose deadline has passed.
    mutating func expire(now: MonotonicTime) -> CallStep {
        var effects: [CallEffect] = []
        for (callID, deadline) in deadlines.sorted(by: { $0.value < $1.value }) where deadline <= now {
            guard let call = calls[callID] else {
                deadlines[callID] = nil
                continue
            }
            switch call.state {
            case .awaitingAgent:
                effects.append(
                    .log(
                        LogLine(
                            .warning,
                            "the agent of \(call.targetName?.rawValue ?? "?") did not connect within \(limits.agentStartTimeout)"
                        )))
                effects += end(callID, .targetNotRunning, now: now)
            case .closing:
                effects.append(
                    .log(
                        LogLine(
                            .warning,
                            "\(call.targetName?.rawValue ?? "?") did not report the end of call \(callID) within \(limits.doneDeadline) of being told to stop it: it ends with 125"
                        )))
                effects += end(callID, .endedByDaemon(reason: "target-silent"), now: now)
            default:
                deadlines[callID] = nil
            }
        }
        return CallStep(effects: effects)
    }

    mutating func releaseDisposableSlot(_ source: DomainID) {
        disposableSlots[source, default: 1] -= 1
        if disposableSlots[source] == 0 { disposableSlots[source] = nil }
        disposableSlotsTotal -= 1
    }
}
