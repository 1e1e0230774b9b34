/// The `type` field of a header. The raw value is the wire string.
public enum MessageKind: String, Sendable, Hashable, CaseIterable {
    case hello
    case call
    case refused
    case connect
    case exec
    case data
    case eof
    case exit
    case done
    case cancel
    case ping
    case pong
    case error

    /// The directions this message may travel in. `data` and `eof` are further restricted by their stream:
    /// `stdin` only caller->service, `stdout` and `stderr` only service->caller.
    public var directions: Set<Direction> {
        switch self {
        case .hello, .ping, .pong, .error: Set(Direction.allCases)
        case .call: [.clientToAgent, .agentToDaemon]
        case .refused, .connect: [.agentToClient, .daemonToAgent]
        case .exec: [.daemonToAgent]
        case .data, .eof: [.callerToService, .serviceToCaller]
        case .exit: [.serviceToCaller]
        case .done: [.agentToDaemon]
        case .cancel: [.clientToAgent, .agentToDaemon, .daemonToAgent, .callerToService]
        }
    }

    /// Whether frames of this kind carry payload bytes after the header (only `data`, which must).
    public var carriesPayload: Bool { self == .data }
}

/// One of the three byte streams of a call.
public enum StreamID: String, Sendable, Hashable, CaseIterable {
    case stdin
    case stdout
    case stderr

    /// The only direction this stream's `data` and `eof` may travel in.
    public var direction: Direction { self == .stdin ? .callerToService : .serviceToCaller }
}

/// Why a call ended, as the `reason` of an `exit` message.
public enum ExitReason: String, Sendable, Hashable, CaseIterable {
    /// The handler exited by itself; `code` is its exit status.
    case exited
    /// The handler died by a signal; `code` is 128 + the signal number.
    case signaled
    /// The deadline passed and SIGTERM ended the handler within the grace period.
    case timeoutTerminated = "timeout-terminated"
    /// The deadline passed, the handler ignored SIGTERM, and SIGKILL ended it.
    case timeoutKilled = "timeout-killed"
    /// The caller cancelled the call.
    case cancelled
    /// The handler wrote more than its `max-output-bytes`.
    case outputLimit = "output-limit"
    /// No handler exists for the service (`code` 127).
    case serviceNotFound = "service-not-found"
    /// The handler could not be started or configured (`code` 125).
    case serviceFailed = "service-failed"
}
