public import SluiceWire

/// How long the daemon waits before it offers a domain's control channel again. A channel that ended because its
/// agent went away is offered again at once (after `base`): agents restart. A channel the daemon cut off for a
/// protocol violation (a malformed frame, a bad name, a ring it could not trust) is offered again after a delay that
/// doubles with every violation in a row, up to `maximum`: a compromised agent that reconnects and misbehaves in a
/// loop costs the daemon a decode, a closed channel and a log line at most once per `maximum`, not fifty times a
/// second. A channel that stays up for `forgiveAfter` before it ends starts the count again. Pure: the caller passes
/// the times, so tests need no clock.
public struct ReofferBackoff: Sendable {
    public static let base: UInt64 = 20_000_000
    public static let maximum: UInt64 = 1_000_000_000
    public static let forgiveAfter: UInt64 = 10_000_000_000

    /// Violations in a row, each on a channel that lived less than `forgiveAfter`.
    public private(set) var violations = 0

    public init() {}

    /// Whether a channel that ended with `code` was cut off for something its agent sent, rather than lost.
    public static func isViolation(_ code: SluiceError.Code) -> Bool {
        (100..<300).contains(code.rawValue) || code == .vchanInvalidRing || code == .notAParty || code == .outOfOrder
    }

    /// Records how a channel ended (`code`, after it was up from `opened` to `ended`, in monotonic nanoseconds) and
    /// returns how long to wait, in nanoseconds, before offering it again.
    public mutating func delay(afterEnding code: SluiceError.Code, opened: UInt64, ended: UInt64) -> UInt64 {
        if ended >= opened && ended - opened >= Self.forgiveAfter { violations = 0 }
        guard Self.isViolation(code) else {
            violations = 0
            return Self.base
        }
        violations += 1
        // 20 ms, 40 ms, 80 ms, ... 1 s: the shift stops growing long before it could overflow.
        let doubled = Self.base << UInt64(min(violations - 1, 16))
        return min(doubled, Self.maximum)
    }
}
