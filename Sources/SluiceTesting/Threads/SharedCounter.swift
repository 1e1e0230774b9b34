import SluiceLocks

/// A counter that threads share: `take` hands out 0, 1, 2, ... once each; `add` counts.
public final class SharedCounter: Sendable {
    private let total = LockedValue(0)

    public init() {}

    /// Returns the value, then adds one.
    public func take() -> Int {
        total.withLock { value in
            defer { value += 1 }
            return value
        }
    }

    public func add(_ count: Int) { total.withLock { $0 += count } }

    public var value: Int { total.withLock { $0 } }
}
