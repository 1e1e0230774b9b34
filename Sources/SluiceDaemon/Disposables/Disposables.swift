import Logging
import SluiceCalls
import SluicePolicy
import SluiceSystem
import SluiceWire

/// Making and destroying disposables through the toolstack, and showing them to the policy while they exist (as a
/// running `DispVM` tagged `created-by-SOURCE`). Toolstack requests block, so each runs on a thread of its own.
struct Disposables: Sendable {
    let toolstack: (any Toolstack)?
    let roster: DomainRoster
    let logger: Logger

    /// Has the toolstack make a disposable from `template` for `source`, and adds it to the roster. The caller then
    /// serves its control channel.
    func create(from template: DomainName, for source: DomainName) async -> Result<PreparedTarget, SluiceError> {
        guard let toolstack else { return .failure(SluiceError(.toolstackFailed, "no toolstack is configured")) }
        let made = await OSThread.run {
            Result { () throws(SluiceError) in try toolstack.createDisposable(template: template) }
        }
        guard case .success(let (name, id)) = made else {
            return made.map { PreparedTarget(id: $0.id, name: $0.name, isDisposable: true) }
        }
        let templateDomain = roster.inventory.domain(named: template.rawValue)
        let entry = Domain(
            name: name.rawValue, type: "DispVM", tags: ["created-by-\(source.rawValue)"],
            defaultDispVM: templateDomain?.defaultDispVM, powerState: "Running")
        guard roster.add(id, name, entry: entry, isDisposable: true) else {
            logger.error("the toolstack made \(name) with id \(id), which is already in use; destroying it")
            _ = await OSThread.run { Result { () throws(SluiceError) in try toolstack.destroy(name) } }
            return .failure(SluiceError(.toolstackFailed, "the toolstack reused the name or id of a domain"))
        }
        logger.info("created disposable \(name) (id \(id)) from \(template) for \(source)")
        return .success(PreparedTarget(id: id, name: name, isDisposable: true))
    }

    /// Stops serving a disposable, forgets it, and has the toolstack destroy it.
    func destroy(_ id: DomainID) {
        guard let (name, isDisposable) = roster.remove(id), isDisposable, let toolstack else { return }
        let logger = logger
        Task {
            let result = await OSThread.run { Result { () throws(SluiceError) in try toolstack.destroy(name) } }
            if case .failure(let error) = result {
                logger.warning("the toolstack did not destroy \(name): \(error)")
            } else {
                logger.info("destroyed disposable \(name)")
            }
        }
    }

    /// Has the toolstack start a halted domain (autostart).
    func start(_ name: DomainName) async -> Result<Void, SluiceError> {
        guard let toolstack else { return .failure(SluiceError(.toolstackFailed, "no toolstack is configured")) }
        return await OSThread.run { Result { () throws(SluiceError) in try toolstack.start(name) } }
    }
}
