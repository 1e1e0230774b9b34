#if canImport(Glibc)
    import Glibc
#endif

/// Timing marks for finding where a call's time goes: with `SLUICE_TRACE=1` in the environment, `mark` writes
/// `trace PID MICROSECONDS LABEL` (monotonic clock, comparable across processes) to stderr. Off, it costs one load.
public enum TraceMarks {
    public static let enabled: Bool = getenv("SLUICE_TRACE") != nil

    @inline(__always)
    public static func mark(_ label: @autoclosure () -> String) {
        guard enabled else { return }
        let line = "trace \(getpid()) \(MonotonicClock.nanoseconds / 1_000) \(label())\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}
