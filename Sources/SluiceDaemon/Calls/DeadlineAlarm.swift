import SluiceCalls
import SluiceLocks
import SluiceSystem

/// Wakes the call broker when the call table's next deadline falls due: one task that sleeps until the earliest
/// deadline, and is woken to sleep again when an earlier one is set. Nothing is polled.
final class DeadlineAlarm: Sendable {
    private struct State {
        var due: MonotonicTime?
        /// Changes with every new `due`, so that a timer set for an old one wakes nobody.
        var generation: UInt64 = 0
        var sleeper: CheckedContinuation<Void, Never>?
    }

    private let state = LockedValue(State())

    /// Sets the next time to fire (nil: none).
    func arm(_ due: MonotonicTime?) {
        let sleeper = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard due != state.due else { return nil }
            state.due = due
            state.generation += 1
            defer { state.sleeper = nil }
            return state.sleeper
        }
        sleeper?.resume()
    }

    /// Calls `fire` each time the armed time passes, until the task is cancelled.
    func run(fire: @Sendable () -> Void) async {
        while !Task.isCancelled {
            let (due, generation) = state.withLock { ($0.due, $0.generation) }
            let now = MonotonicClock.nanoseconds
            if let due, due.nanoseconds <= now {
                state.withLock { if $0.generation == generation { $0.due = nil } }
                fire()
                continue
            }
            let timer = due.map { due in
                Task { [weak self] in
                    try? await Task.sleep(nanoseconds: due.nanoseconds - now)
                    self?.wake(generation)
                }
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let now = state.withLock { state -> Bool in
                        if state.generation != generation || Task.isCancelled { return true }
                        state.sleeper = continuation
                        return false
                    }
                    if now { continuation.resume() }
                }
            } onCancel: {
                wake(nil)
            }
            timer?.cancel()
        }
    }

    /// Wakes the sleeper if it still sleeps for `generation` (nil: whatever it sleeps for).
    private func wake(_ generation: UInt64?) {
        let sleeper = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard generation == nil || state.generation == generation else { return nil }
            if generation != nil { state.generation += 1 }
            defer { state.sleeper = nil }
            return state.sleeper
        }
        sleeper?.resume()
    }
}
