import SluiceLocks

/// Bounds the requests of one domain that are being decided at once. The domain's control loop waits at `enter()`
/// before it reads the next request, so a domain that floods requests fills its own ring and waits, instead of
/// filling the daemon with tasks.
final class UndecidedGate: Sendable {
    private struct State {
        var inside = 0
        var waiter: CheckedContinuation<Void, Never>?
    }

    let limit: Int
    private let state = LockedValue(State())

    init(limit: Int) { self.limit = max(limit, 1) }

    /// Waits until fewer than `limit` requests are inside. Only one task (the control loop) may wait at a time.
    func enter() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.inside < limit {
                    state.inside += 1
                    return true
                }
                state.waiter = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }

    func leave() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                // The slot passes straight to the waiter.
                state.waiter = nil
                return waiter
            }
            state.inside -= 1
            return nil
        }
        waiter?.resume()
    }
}
