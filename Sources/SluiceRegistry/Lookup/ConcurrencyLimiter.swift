import SluiceLocks
public import SluiceWire
import Synchronization

/// Counts running calls per service and refuses one past the service's `max-concurrent`: nothing waits in a queue.
public final class ConcurrencyLimiter: Sendable {
    private let running = LockedValue<[String: Int]>([:])

    public init() {}

    /// A running call's place; give it back with `release()` (or let it go).
    public final class Permit: Sendable {
        private let limiter: ConcurrencyLimiter
        private let service: String
        private let released = Atomic<Bool>(false)

        init(_ limiter: ConcurrencyLimiter, _ service: String) {
            self.limiter = limiter
            self.service = service
        }

        public func release() {
            guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
            limiter.running.withLock { counts in
                counts[service, default: 1] -= 1
                if counts[service] == 0 { counts[service] = nil }
            }
        }

        deinit { release() }
    }

    /// Takes a place for `service`, or fails with `service-busy` (403) when `limit` calls already run.
    public func acquire(_ service: String, limit: Int?) throws(SluiceError) -> Permit {
        let admitted = running.withLock { counts -> Bool in
            let current = counts[service, default: 0]
            if let limit, current >= limit { return false }
            counts[service] = current + 1
            return true
        }
        guard admitted else {
            throw SluiceError(.serviceBusy, "service \(service) already runs its maximum of \(limit ?? 0) calls")
        }
        return Permit(self, service)
    }

    public func count(_ service: String) -> Int { running.withLock { $0[service, default: 0] } }
}
