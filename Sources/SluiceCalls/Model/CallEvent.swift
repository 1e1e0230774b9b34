public import SluiceWire

/// Everything that can move a call. Each event comes from a `Party`; the table decides whether that party may cause
/// it for the call it names, in the state that call is in.
public enum CallEvent: Sendable, Hashable {
    // From a domain's control channel
    /// A new request (the sender becomes its caller).
    case request(CallRequest)
    /// The caller withdraws request `id`, or, once it is a call, says its side of the call has ended.
    case cancel(RequestID)
    /// The target reports that call `call` ended.
    case done(CallReport)
    /// The session's channel closed.
    case sessionClosed

    // From the daemon's own parts
    /// The policy's verdict on a call being decided.
    case decided(CallID, Verdict)
    /// The user's answer: a plan to run the call, or nil (denied, no answer, an answer that was not offered).
    case answered(CallID, TargetPlan?)
    /// The toolstack made the call's target ready.
    case prepared(CallID, PreparedTarget)
    /// The toolstack could not start or make the call's target.
    case preparationFailed(CallID, SluiceError)
    /// Time passed: every deadline at or before now falls due.
    case tick
}
