/// Every limit the admin domain's daemon enforces on calls, in one value, each with its documented default and the
/// error a party sees when it is reached (`docs/calls.md`, "Limits").
///
/// The call table enforces the call limits; the daemon's control channels enforce the two channel limits at the end.
public struct CallLimits: Sendable, Hashable {
    /// Calls in flight from one domain: admitted (a slot and a port taken) and not yet ended. Over it a request is
    /// refused with `too-many-calls` (510). Requests are never queued for a slot: a caller over its limit hears at once.
    public var callsPerDomain: Int = 64
    /// Calls in flight in all; over it, `too-many-calls` (510).
    public var callsTotal: Int = 1_024
    /// Questions waiting for the user from one domain; over it, `too-many-asks` (512). A question counts until the ask
    /// agent answers it, even if its call was cancelled meanwhile, so cancelling cannot pile questions up.
    public var pendingAsksPerDomain: Int = 4
    /// Questions waiting for the user in all; over it, `too-many-asks` (512).
    public var pendingAsksTotal: Int = 32
    /// The longest request: bytes of `SERVICE+ARG`, target and requested source; over it, `request-too-large` (511).
    /// The default admits qrexec's 65 000-byte `SERVICE+ARG`.
    public var requestBytes: Int = 65_536
    /// Call requests one domain may send per second on average, in bursts of as many; over it, `rate-limited` (514),
    /// and the domain's channel is left unread for `rateLimitPause`.
    public var requestsPerSecond: Int = 1_000
    /// How long a domain's control channel is left unread after a request over its rate.
    public var rateLimitPause: Duration = .milliseconds(100)
    /// Disposables made for one domain's calls that exist at once; over it, `too-many-disposables` (517).
    public var disposablesPerDomain: Int = 8
    /// Disposables that exist at once in all; over it, `too-many-disposables` (517).
    public var disposablesTotal: Int = 64
    /// How long the daemon waits for the agent of a domain it had started (autostart) or made (a disposable) to
    /// connect; past it the call is refused with `channel-closed` (501) and reason `target-not-running`. As qrexec's
    /// default `qrexec_timeout`: a virtual machine takes seconds to boot.
    public var agentStartTimeout: Duration = .seconds(60)
    /// Once the caller's side of a call has ended (its agent said so), how long the target has to report the call's
    /// end (`done`) after it was told to stop it; past it the call ends with 125 and reason `target-silent`, and the
    /// caller's slot is free again. It covers a handler's SIGTERM grace period with room to spare.
    public var doneDeadline: Duration = .seconds(10)
    /// Calls ended by the daemon (not by their target's report) whose late report is still recognised as late, not
    /// as a report about a call the sender never had.
    public var rememberedEndedCalls: Int = 4_096
    /// How long a frame may wait for room on an agent's control channel before the daemon decides the agent has
    /// stopped reading and cuts it off (its calls end with 125, `target-gone`).
    public var controlSendTimeout: Duration = .seconds(5)

    public init() {}
}
