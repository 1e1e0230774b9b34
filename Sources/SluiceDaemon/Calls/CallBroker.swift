import Logging
import SluiceCalls
import SluiceLocks
import SluicePolicy
import SluiceSystem
import SluiceVchan
import SluiceWire

/// Runs the call table: feeds it what arrives on control channels and what the daemon's own parts report (the
/// policy's verdicts, the user's answers, the toolstack's results, deadlines), and carries out what each step asks
/// for. Sends and audit lines happen under the table's lock, in the order the table asked for them, so that no two
/// steps' messages to one channel can cross; asking the user and driving the toolstack happen off the lock, on
/// threads of their own, and report back as events.
final class CallBroker: ControlHandler, Sendable {
    private let table: LockedValue<CallTable>
    private let channels: ControlChannels
    private let verdicts: PolicyVerdicts
    private let askAgent: any AskAgent
    private let disposables: Disposables
    private let audit: AuditLog?
    private let logger: Logger
    private let alarm = DeadlineAlarm()

    init(
        limits: CallLimits, channels: ControlChannels, verdicts: PolicyVerdicts, askAgent: any AskAgent,
        disposables: Disposables, audit: AuditLog?, logger: Logger
    ) {
        table = LockedValue(CallTable(limits: limits, ids: .system))
        self.channels = channels
        self.verdicts = verdicts
        self.askAgent = askAgent
        self.disposables = disposables
        self.audit = audit
        self.logger = logger
    }

    /// Serves the control channel of a domain that appeared (a disposable, a domain xenstore lists) until the domain
    /// is removed from the roster.
    func serveAppeared(_ id: DomainID, _ name: DomainName) {
        let channels = channels
        verdicts.roster.serve(id) { Task { await channels.serve(id, name, first: nil, handler: self) } }
    }

    /// Fires the table's deadlines until the task is cancelled.
    func runDeadlines() async {
        await alarm.run { [self] in _ = step(.tick, from: .deadline) }
    }

    // MARK: ControlHandler

    func opened(_ domain: DomainID, _ name: DomainName, channel: VchanFrameChannel) -> SessionID {
        var session = SessionID(rawValue: 0)
        _ = run { table, now in
            let (id, effects) = table.openSession(domain: domain, name: name, now: now)
            // Attached (and hello answered) before the effects run: they may broker calls that waited for this agent.
            channels.attach(id, channel, name: name)
            session = id
            return CallStep(effects: effects)
        }
        return session
    }

    func received(_ message: Message, on session: SessionID) -> ControlChannels.Outcome {
        let event: CallEvent
        switch message {
        case .call(let request):
            TraceMarks.mark("daemon: call")
            event = .request(request)
        case .cancel(let id): event = .cancel(id)
        case .done(let report): event = .done(report)
        default: return .next
        }
        return step(event, from: .session(session))
    }

    func closed(_ session: SessionID) {
        _ = step(.sessionClosed, from: .session(session))
    }

    // MARK: Steps

    /// One event through the table, and everything it leads to.
    @discardableResult
    func step(_ event: CallEvent, from party: Party) -> ControlChannels.Outcome {
        run { table, now in table.handle(event, from: party, now: now) }
    }

    /// Runs `first` on the table, then carries out its effects in order: sends, audit lines and log lines under the
    /// lock; policy verdicts at once (the policy is pure and fast), fed back as the next steps; asks and toolstack
    /// work after the lock is released.
    private func run(_ first: (inout CallTable, MonotonicTime) -> CallStep) -> ControlChannels.Outcome {
        var outcome = ControlChannels.Outcome.next
        var later: [CallEffect] = []
        let next = table.withLock { table -> MonotonicTime? in
            var now = MonotonicTime(nanoseconds: MonotonicClock.nanoseconds)
            var step = first(&table, now)
            var pending: [(CallEvent, Party)] = []
            while true {
                if let violation = step.violation { outcome = .violation(violation) }
                if let ignored = step.ignored { logger.debug("\(ignored)") }
                for effect in step.effects {
                    switch effect {
                    case .send(let message, let session): channels.post(message, to: session)
                    case .sendIfRoom(let message, let session): channels.postIfRoom(message, to: session)
                    case .audit(let record, let event): audit?.write(record, event: event)
                    case .evaluate(let call, let question):
                        pending.append((.decided(call, verdicts.verdict(question)), .policy))
                    case .pauseReading(_, let duration): outcome = .pause(duration)
                    case .log(let line): log(line)
                    case .ask, .startDomain, .createDisposable, .destroyDisposable: later.append(effect)
                    }
                }
                guard !pending.isEmpty else { break }
                let (event, party) = pending.removeFirst()
                now = MonotonicTime(nanoseconds: MonotonicClock.nanoseconds)
                step = table.handle(event, from: party, now: now)
            }
            return table.nextDeadline
        }
        alarm.arm(next)
        for effect in later { launch(effect) }
        return outcome
    }

    /// Starts the slow work a step asked for; its result comes back as an event.
    private func launch(_ effect: CallEffect) {
        switch effect {
        case .ask(let call, let question):
            let askAgent = askAgent
            Task {
                let answer = await OSThread.run {
                    askAgent.ask(
                        source: question.source, service: question.service, argument: question.argument,
                        targets: question.targets, defaultTarget: question.defaultTarget)
                }
                step(.answered(call, verdicts.plan(answering: question, with: answer)), from: .askAgent)
            }
        case .startDomain(let call, let name):
            Task {
                switch await disposables.start(name) {
                case .success(let started):
                    // Locally the inventory fixes every id; on Xen a started domain's id is what xenstore now says.
                    guard let id = started ?? verdicts.roster.id(of: name.rawValue) else {
                        step(
                            .preparationFailed(call, SluiceError(.toolstackFailed, "\(name) has no id")),
                            from: .toolstack)
                        return
                    }
                    if started != nil { serveAppeared(id, name) }
                    step(.prepared(call, PreparedTarget(id: id, name: name, isDisposable: false)), from: .toolstack)
                case .failure(let error):
                    step(.preparationFailed(call, error), from: .toolstack)
                }
            }
        case .createDisposable(let call, let template, let source):
            Task {
                switch await disposables.create(from: template, for: source) {
                case .success(let target):
                    serveAppeared(target.id, target.name)
                    step(.prepared(call, target), from: .toolstack)
                case .failure(let error):
                    step(.preparationFailed(call, error), from: .toolstack)
                }
            }
        case .destroyDisposable(let id):
            disposables.destroy(id)
        default:
            break
        }
    }

    private func log(_ line: LogLine) {
        switch line.level {
        case .debug: logger.debug("\(line.message)")
        case .info: logger.info("\(line.message)")
        case .notice: logger.notice("\(line.message)")
        case .warning: logger.warning("\(line.message)")
        }
    }
}
