import SluiceLocks

/// A flag that one thread sets and others read: "stop now" for a test's or a benchmark's worker threads.
public final class SharedFlag: Sendable {
    private let value = LockedValue(false)

    public init() {}

    public func set() { value.withLock { $0 = true } }

    @Sendable public func isSet() -> Bool { value.withLock { $0 } }
}
