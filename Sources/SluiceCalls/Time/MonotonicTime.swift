/// A point on the monotonic clock, in nanoseconds. The call table never reads a clock: every step is given the time,
/// so a test moves time by hand and needs no sleep.
public struct MonotonicTime: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static let zero = MonotonicTime(nanoseconds: 0)

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    /// `time` moved on by `duration` (saturating: a negative duration is taken as zero, a huge one as the end of time).
    public static func + (time: Self, duration: Duration) -> Self {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, attoseconds >= 0 else { return time }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        let nanoseconds = whole.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000))
        guard !overflow, !nanoseconds.overflow else { return MonotonicTime(nanoseconds: .max) }
        let sum = time.nanoseconds.addingReportingOverflow(nanoseconds.partialValue)
        return MonotonicTime(nanoseconds: sum.overflow ? .max : sum.partialValue)
    }

    /// How long after `earlier` this is (zero if it is not after it).
    public func duration(since earlier: Self) -> Duration {
        guard nanoseconds > earlier.nanoseconds else { return .zero }
        return .nanoseconds(Int64(clamping: nanoseconds - earlier.nanoseconds))
    }

    public var description: String { "\(nanoseconds) ns" }
}

extension Duration {
    /// Whole milliseconds, rounded down (for log lines and wire fields).
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }
}
