#if canImport(Glibc)
    import Glibc
#endif

/// A value that threads share behind a pthread mutex: `withLock` gives one thread at a time `inout` access.
///
/// Sluice uses this instead of the standard library's `Synchronization.Mutex` so that ThreadSanitizer can check
/// every lock. On this toolchain `Mutex` locks with futexes that TSan does not see, so every access it protects is
/// reported as a race (a two-thread counter behind a `Mutex` is enough to show it; see docs/sanitizers.md). TSan
/// intercepts pthread mutexes, so with this type a report is a real race. The cost is one allocation per lock and
/// the same uncontended lock and unlock.
public final class LockedValue<Value: ~Copyable>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: consuming Value) {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        self.value = value
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the value while holding the lock. `body` must not call `withLock` on the same value.
    public func withLock<Result: ~Copyable, Failure: Error>(
        _ body: (inout Value) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
