/// A token bucket per domain: `perSecond` requests a second on average, bursts of up to `burst`. Pure: the caller
/// passes the time, so tests need no clock.
struct RequestRate: Sendable {
    let perSecond: Double
    let burst: Double
    private var tokens: Double
    private var last: UInt64

    init(perSecond: Int, burst: Int, now: UInt64) {
        self.perSecond = Double(perSecond)
        self.burst = Double(max(burst, 1))
        tokens = self.burst
        last = now
    }

    /// Takes one token if there is one; `now` in nanoseconds (monotonic).
    mutating func admit(now: UInt64) -> Bool {
        if now > last {
            tokens = min(burst, tokens + Double(now - last) / 1e9 * perSecond)
            last = now
        }
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

/// Counts refusals for the log: `count(now:)` returns how many were refused since the last log line, at most once a
/// second.
struct RateLimitLog: Sendable {
    private var refused = 0
    private var lastLine: UInt64 = 0

    mutating func count(now: UInt64) -> Int? {
        refused += 1
        guard now >= lastLine + 1_000_000_000 else { return nil }
        defer {
            refused = 0
            lastLine = now
        }
        return refused
    }
}
