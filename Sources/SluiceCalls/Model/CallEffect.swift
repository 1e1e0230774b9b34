public import SluiceWire

/// What the daemon must do after a step of the call table, in order. The table does no I/O: sending, writing the
/// audit log, asking, and driving the toolstack are the daemon's, and their results come back as events.
public enum CallEffect: Sendable, Hashable {
    /// Send `message` on `session`'s control channel, in order behind what was sent before.
    case send(Message, to: SessionID)
    /// Send `message` only if it can go at once; drop it otherwise (a refusal to a domain that floods requests).
    case sendIfRoom(Message, to: SessionID)
    /// Write an audit line.
    case audit(CallRecord, CallRecord.Event)
    /// Ask the policy; answer with `.decided` from `.policy`.
    case evaluate(CallID, PolicyQuestion)
    /// Ask the user; answer with `.answered` from `.askAgent`.
    case ask(CallID, AskQuestion)
    /// Start a halted domain; answer with `.prepared` or `.preparationFailed` from `.toolstack`.
    case startDomain(CallID, DomainName)
    /// Make a disposable; answer with `.prepared` (after serving its control channel) or `.preparationFailed`.
    case createDisposable(CallID, template: DomainName, source: DomainName)
    /// Destroy a disposable (its call has ended, or it was made for a call that no longer exists).
    case destroyDisposable(DomainID)
    /// Leave `session`'s control channel unread for a while (after a request over its rate).
    case pauseReading(SessionID, Duration)
    /// A line for the administrator's log.
    case log(LogLine)
}

/// A log line the table asks for: the limits it enforces and the ends it decides are worth an administrator's look.
public struct LogLine: Sendable, Hashable {
    public enum Level: String, Sendable, Hashable {
        case debug, info, notice, warning
    }

    public var level: Level
    public var message: String

    public init(_ level: Level, _ message: String) {
        self.level = level
        self.message = message
    }
}

/// A message a session had no business sending: it names a call it takes no part in (or that never existed), or it
/// does not fit its call's state. The daemon cuts the session's channel off (after an `error` frame with the code) and
/// logs the sender's real domain; no call of another domain changes.
public struct CallViolation: Error, Sendable, Hashable, CustomStringConvertible {
    public var session: SessionID
    public var domain: DomainName
    public var error: SluiceError

    public var description: String { "\(domain) (\(session)): \(error)" }
}
