import SluiceWire

/// How a call ends, and what ending it releases.
extension CallTable {
    enum Ending {
        /// Refused before it was brokered; the caller is told.
        case refused(reason: String, code: SluiceError.Code, message: String)
        /// Dropped before it was brokered because the caller's channel closed: nobody to tell.
        case callerGone
        /// The target reported the end.
        case reported(CallReport)
        /// The daemon ended a brokered call (its target's channel closed, or it did not report in time): 125.
        case endedByDaemon(reason: String)

        static let targetNotRunning = Ending.refused(
            reason: "target-not-running", code: .channelClosed, message: "the target domain is not running")
    }

    /// Takes the call out of the table and releases everything it held: its request on the caller's session, its
    /// slot and port, its deadline, its disposable (destroyed after the call's own line is written). Work still under
    /// way for it (a question on the screen, a disposable being made) keeps its slot until its result comes back.
    mutating func end(_ callID: CallID, _ ending: Ending, now: MonotonicTime) -> [CallEffect] {
        guard var call = calls.removeValue(forKey: callID) else { return [] }
        deadlines[callID] = nil
        sessions[call.caller]?.open[call.requestID] = nil
        if let port = call.port {
            ports.remove(port.rawValue)
            admitted[call.source, default: 1] -= 1
            if admitted[call.source] == 0 { admitted[call.source] = nil }
            admittedTotal -= 1
        }
        if call.state == .asking { outstanding[callID] = .ask(source: call.source) }
        var effects: [CallEffect] = []
        switch ending {
        case .refused(let reason, let code, let message):
            call.record.call = 0
            call.record.reason = reason
            effects.append(.audit(call.record, .refused))
            if sessions[call.caller] != nil {
                effects.append(
                    .send(.refused(Refusal(id: call.requestID, code: code, message: message)), to: call.caller))
            }
        case .callerGone:
            call.record.call = 0
            call.record.reason = "caller-gone"
            effects.append(.audit(call.record, .refused))
        case .reported(let report):
            call.record.exitCode = Int(report.exitCode)
            call.record.bytesIn = report.bytesIn
            call.record.bytesOut = report.bytesOut
            call.record.duration = now.duration(since: call.started)
            effects.append(.audit(call.record, .ended))
            // A target that gives up with 125 may never have reached the caller (it could not start the call, or the
            // caller's descriptors were refused): the caller's agent hears at once, so a caller still waiting for the
            // data channel stops waiting. (Ignored by a caller already connected.)
            if report.exitCode == 125, case .brokered(let target) = call.state, target != call.caller,
                sessions[call.caller] != nil
            {
                effects.append(.send(.cancel(callID), to: call.caller))
            }
        case .endedByDaemon(let reason):
            call.record.exitCode = 125
            call.record.reason = reason
            call.record.bytesIn = 0
            call.record.bytesOut = 0
            call.record.duration = now.duration(since: call.started)
            effects.append(.audit(call.record, .ended))
            if let target = call.targetDomain { remember(callID, target: target) }
            // A caller still waiting for the target to connect hears at once, instead of at its connect timeout.
            if case .brokered(let target) = call.state, target != call.caller, sessions[call.caller] != nil {
                effects.append(.send(.cancel(callID), to: call.caller))
            }
        }
        if call.holdsDisposableSlot {
            if let disposable = call.disposable {
                effects.append(.destroyDisposable(disposable))
                releaseDisposableSlot(call.source)
            } else if call.state == .starting {
                outstanding[callID] = .creation(source: call.source)
            } else {
                releaseDisposableSlot(call.source)
            }
        }
        return effects
    }

    /// Remembers a call the daemon ended itself, so that its target's late report is recognised; the oldest is
    /// forgotten past `limits.rememberedEndedCalls`.
    mutating func remember(_ callID: CallID, target: DomainID) {
        guard limits.rememberedEndedCalls > 0 else { return }
        tombstones[callID] = target
        tombstoneOrder.append(callID)
        while tombstoneOrder.count - tombstoneHead > limits.rememberedEndedCalls {
            tombstones[tombstoneOrder[tombstoneHead]] = nil
            tombstoneHead += 1
        }
        if tombstoneHead >= limits.rememberedEndedCalls {
            tombstoneOrder.removeFirst(tombstoneHead)
            tombstoneHead = 0
        }
    }
}
