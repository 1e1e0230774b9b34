#if canImport(Glibc)
    import Glibc
#endif

/// CLOCK_MONOTONIC: for deadlines and durations, never for wall time.
public enum MonotonicClock {
    public static var nanoseconds: UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }

    public static var milliseconds: Int { Int(nanoseconds / 1_000_000) }
}
