/// A token bucket: `perSecond` requests a second on average, bursts of up to `burst`. Pure: the caller passes the
/// time, so tests need no clock.
public struct RequestRate: Sendable, Hashable {
    public let perSecond: Double
    public let burst: Double
    private var tokens: Double
    private var last: MonotonicTime

    public init(perSecond: Int, burst: Int, now: MonotonicTime) {
        self.perSecond = Double(max(perSecond, 0))
        self.burst = Double(max(burst, 1))
        tokens = self.burst
        last = now
    }

    /// Takes one token if there is one.
    public mutating func admit(now: MonotonicTime) -> Bool {
        if now > last {
            tokens = min(burst, tokens + Double(now.nanoseconds - last.nanoseconds) / 1e9 * perSecond)
            last = now
        }
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

/// Counts refusals for the log: `count(now:)` returns how many were refused since the last log line, at most once a
/// second.
public struct RateLimitLog: Sendable, Hashable {
    private var refused = 0
    private var lastLine: MonotonicTime?

    public init() {}

    public mutating func count(now: MonotonicTime) -> Int? {
        refused += 1
        if let lastLine, now < lastLine + .seconds(1) { return nil }
        defer {
            refused = 0
            lastLine = now
        }
        return refused
    }
}
