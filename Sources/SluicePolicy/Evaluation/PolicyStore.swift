import SluiceLocks
public import SluiceWire
import Synchronization

/// The policy a daemon decides with, swapped atomically on reload.
///
/// A reload parses the new policy completely before it replaces the old one. If the new policy is broken, the
/// store becomes unusable and every call is denied (fail closed, as qrexec), with the error kept for the logs;
/// the next good reload restores it. Decisions in progress keep the compiled policy they started with.
public final class PolicyStore: Sendable {
    public enum State: Sendable {
        case usable(CompiledPolicy)
        case unusable(PolicyError)
    }

    private let state: LockedValue<State>
    private let generationCounter = Atomic<UInt64>(0)

    public init(state: State) {
        self.state = LockedValue(state)
    }

    /// Loads and compiles with `load`, then swaps the result in. Returns the error if the new policy is unusable.
    @discardableResult
    public func reload(inventory: Inventory, _ load: () throws(PolicyError) -> Policy) -> PolicyError? {
        let next: State
        do {
            next = .usable(CompiledPolicy(try load(), inventory: inventory))
        } catch {
            next = .unusable(error)
        }
        state.withLock { $0 = next }
        generationCounter.wrappingAdd(1, ordering: .releasing)
        if case .unusable(let error) = next { return error }
        return nil
    }

    /// Rebinds the current policy to a new inventory (a domain appeared, changed or went away).
    public func update(inventory: Inventory) {
        state.withLock { state in
            if case .usable(let compiled) = state {
                state = .usable(CompiledPolicy(compiled.policy, inventory: inventory))
            }
        }
        generationCounter.wrappingAdd(1, ordering: .releasing)
    }

    public var current: State { state.withLock { $0 } }

    /// How many times the state was replaced.
    public var generation: UInt64 { generationCounter.load(ordering: .acquiring) }

    /// Decides with the current policy; an unusable policy denies everything with reason `policy-unusable`.
    public func evaluate(_ request: PolicyRequest) -> Result<Decision, SluiceError> {
        switch current {
        case .usable(let compiled):
            return compiled.evaluate(request)
        case .unusable:
            return .success(
                .deny(
                    .policyUnusable, requestedTarget: request.target.isEmpty ? "@default" : request.target, rule: nil,
                    notify: true,
                    policySource: nil))
        }
    }
}
