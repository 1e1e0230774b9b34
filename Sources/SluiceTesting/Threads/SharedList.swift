import SluiceLocks

/// A list that threads append to, read whole: the failures a test's worker threads saw, a benchmark's latencies.
public final class SharedList<Element: Sendable>: Sendable {
    private let items = LockedValue<[Element]>([])

    public init() {}

    public func add(_ item: Element) { items.withLock { $0.append(item) } }

    /// A copy of everything added so far, in the order it was added.
    public var all: [Element] { items.withLock { $0 } }

    public var count: Int { items.withLock { $0.count } }
}
