import Logging
import SluiceCalls
import SluicePolicy
import SluiceSystem
import SluiceVchan
import SluiceWire

/// Making and destroying disposables through the toolstack, and showing them to the policy while they exist (as a
/// running `DispVM` tagged `created-by-SOURCE`). Toolstack requests block, so each runs on a thread of its own.
struct Disposables: Sendable {
    let toolstack: (any Toolstack)?
    let roster: DomainRoster
    /// Whether domains come from xenstore (their ids are known only once they run).
    let isXen: Bool
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

    /// Has the toolstack start a halted domain (autostart). On Xen, where a domain has an id only once it runs, the
    /// started domain is looked up in xenstore and added to the roster: its id is returned, and the caller serves it.
    func start(_ name: DomainName) async -> Result<DomainID?, SluiceError> {
        guard let toolstack else { return .failure(SluiceError(.toolstackFailed, "no toolstack is configured")) }
        let started = await OSThread.run { Result { () throws(SluiceError) in try toolstack.start(name) } }
        if case .failure(let error) = started { return .failure(error) }
        guard isXen, roster.id(of: name.rawValue) == nil else { return .success(nil) }
        let listed = await OSThread.run { Result { () throws(SluiceError) in try XenStore.domains() } }
        guard case .success(let domains) = listed, let id = domains.first(where: { $0.name == name.rawValue })?.id
        else {
            return .failure(SluiceError(.toolstackFailed, "\(name) was started but xenstore does not list it"))
        }
        var entry = roster.configuredEntry(name.rawValue) ?? Domain(name: name.rawValue)
        entry.powerState = "Running"
        _ = roster.add(id, name, entry: entry, isDisposable: false)
        return .success(roster.id(of: name.rawValue) == id ? id : nil)
    }
}
