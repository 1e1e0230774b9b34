import Logging
import SluiceCalls
import SluiceLocks
import SluiceSystem
import SluiceVchan
import SluiceWire

/// What the daemon does with what arrives on its control channels (the call broker).
protocol ControlHandler: Sendable {
    /// A domain's agent said hello on `channel`: opens its session. The channel must be attached to the session
    /// before anything is sent to it.
    func opened(_ domain: DomainID, _ name: DomainName, channel: VchanFrameChannel) -> SessionID
    /// A `call`, `cancel` or `done` arrived on `session`.
    func received(_ message: Message, on session: SessionID) -> ControlChannels.Outcome
    /// The session's channel closed.
    func closed(_ session: SessionID)
}

/// The admin domain's end of every domain's control channel: offering it (again, after a backoff, whenever it ends),
/// the hello, reading messages in order and handing calls to the broker, answering pings, and sending in order
/// through each channel's outbox. A peer that leaves a frame unread for `sendTimeout` is cut off.
final class ControlChannels: Sendable {
    enum Outcome: Sendable {
        /// Read the next message.
        case next
        /// Leave the channel unread for a while first (a request over the domain's rate).
        case pause(Duration)
        /// The sender broke the protocol: cut it off.
        case violation(CallViolation)
    }

    private struct Attached {
        var channel: VchanFrameChannel
        var name: DomainName
        /// Whether a watchdog task is timing the oldest frame waiting in this channel's outbox.
        var watched = false
    }

    private let transport: VchanTransport
    private let reactor: Reactor
    private let sendTimeout: Duration
    private let logger: Logger
    private let onConnect: @Sendable (DomainName) -> Void
    private let sessions = LockedValue<[SessionID: Attached]>([:])

    init(
        transport: VchanTransport, reactor: Reactor, sendTimeout: Duration, logger: Logger,
        onConnect: @escaping @Sendable (DomainName) -> Void
    ) {
        self.transport = transport
        self.reactor = reactor
        self.sendTimeout = sendTimeout
        self.logger = logger
        self.onConnect = onConnect
    }

    /// Offers domain `id`'s control channel (vchan server on port 512).
    func offer(_ id: DomainID) throws(SluiceError) -> any Vchan {
        try transport.server(peer: id, port: .control, readMinimum: 131_072, writeMinimum: 131_072)
    }

    // MARK: Sessions

    /// Attaches a session's channel and answers the agent's hello on it: first, before anything else the session's
    /// opening sends (an order for a call that waited for this agent).
    func attach(_ session: SessionID, _ channel: VchanFrameChannel, name: DomainName) {
        sessions.withLock { $0[session] = Attached(channel: channel, name: name) }
        post(.hello(.current), to: session)
    }

    func detach(_ session: SessionID) {
        _ = sessions.withLock { $0.removeValue(forKey: session) }
    }

    /// Sends `message` on `session`'s channel, in order behind what was sent before, never waiting; a frame that must
    /// wait for room is timed. Dropped if the session has ended (its calls have ended with it).
    func post(_ message: Message, to session: SessionID) {
        guard let attached = sessions.withLock({ $0[session] }) else { return }
        do {
            if try !attached.channel.post(message).sentNow { watch(session) }
        } catch {
            logger.debug("cannot send \(message.kind.rawValue) to \(attached.name): \(error)")
        }
    }

    /// Sends `message` only if it can leave at once (nothing waiting before it, room in the ring).
    func postIfRoom(_ message: Message, to session: SessionID) {
        guard let attached = sessions.withLock({ $0[session] }) else { return }
        _ = try? attached.channel.trySend(message)
    }

    /// Times the frames waiting in `session`'s outbox, oldest first, and cuts the channel off when one has waited
    /// `sendTimeout`: a target that stops reading must not hold its callers' calls (they end when its channel closes).
    private func watch(_ session: SessionID) {
        let start = sessions.withLock { sessions -> Attached? in
            guard var attached = sessions[session], !attached.watched else { return nil }
            attached.watched = true
            sessions[session] = attached
            return attached
        }
        guard let start else { return }
        let timeout = UInt64(sendTimeout.wholeMilliseconds) * 1_000_000
        let milliseconds = sendTimeout.wholeMilliseconds
        let logger = logger
        Task {
            let channel = start.channel
            while true {
                guard let (sequence, postedAt) = channel.oldestWaiting else {
                    // Done, unless a frame was queued between the look and the flag.
                    let again = sessions.withLock { sessions -> Bool in
                        if channel.oldestWaiting != nil { return true }
                        sessions[session]?.watched = false
                        return false
                    }
                    if again { continue }
                    return
                }
                let deadline = postedAt + timeout
                let now = MonotonicClock.nanoseconds
                if now >= deadline {
                    logger.warning(
                        "\(start.name) has not read its control channel for \(milliseconds) ms: cutting it off")
                    channel.close()
                    return
                }
                _ = await channel.waitUntilSent(sequence, timeoutNanoseconds: deadline - now)
            }
        }
    }

    // MARK: Serving

    /// Serves one domain's control channel until the task is cancelled, offering it again whenever it ends: after
    /// `ReofferBackoff`'s delay, which grows while the agent keeps breaking the protocol.
    func serve(_ id: DomainID, _ name: DomainName, first: (any Vchan)?, handler: any ControlHandler) async {
        var offered = first
        var backoff = ReofferBackoff()
        while !Task.isCancelled {
            var opened = MonotonicClock.nanoseconds
            do throws(SluiceError) {
                let vchan: any Vchan
                if let first = offered { vchan = first } else { vchan = try offer(id) }
                offered = nil
                let channel = try VchanFrameChannel(
                    vchan: vchan, reactor: reactor, receiving: .agentToDaemon, logger: logger)
                var session: SessionID?
                defer {
                    channel.close()
                    if let session {
                        detach(session)
                        handler.closed(session)
                    }
                }
                guard case .hello(let peer) = try await channel.receive() else {
                    throw SluiceError(.unsupportedVersion, "the agent did not start with hello")
                }
                _ = try Hello.current.negotiate(with: peer)
                // The session opens (and `attach` answers hello) before anything is sent: once the agent hears
                // hello, its domain counts as running.
                let current = handler.opened(id, name, channel: channel)
                session = current
                opened = MonotonicClock.nanoseconds
                logger.info("agent connected", metadata: ["domain": "\(name)"])
                onConnect(name)
                while true {
                    let message = try await channel.receive()
                    switch message {
                    case .call, .cancel, .done:
                        switch handler.received(message, on: current) {
                        case .next: break
                        case .pause(let duration): try? await Task.sleep(for: duration)
                        case .violation(let violation):
                            logger.warning(
                                "cutting off \(name): \(violation.error)",
                                metadata: ["domain": "\(name)", "code": "\(violation.error.code.name)"])
                            _ = try? channel.trySend(.error(ErrorReport(violation.error)))
                            throw violation.error
                        }
                    case .ping(let nonce):
                        try channel.post(.pong(nonce))
                    case .pong:
                        break
                    case .hello:
                        throw SluiceError(.outOfOrder, "a second hello on an open channel")
                    case .error(let report):
                        logger.notice(
                            "the agent of \(name) is closing its channel: \(report.code.name): \(report.message)")
                        throw SluiceError(.channelClosed, "the agent closed its channel (\(report.code.name))")
                    default:
                        throw SluiceError(.wrongDirection, "unexpected \(message.kind.rawValue) from the agent")
                    }
                }
            } catch {
                if Task.isCancelled { return }
                let delay = backoff.delay(afterEnding: error.code, opened: opened, ended: MonotonicClock.nanoseconds)
                logger.warning(
                    "control channel closed",
                    metadata: [
                        "domain": "\(name)", "reason": "\(error)",
                        "offered-again-in-ms": "\(delay / 1_000_000)",
                    ])
                try? await Task.sleep(nanoseconds: delay)
            }
        }
    }
}
