import Logging
import SluicePolicy
import SluiceSystem
import SluiceVchan
import SluiceWire

/// On Xen, the domains come from xenstore: those it lists are added to the roster and served, and those that went
/// away are removed, each time xenstore says a domain was introduced or released (a watch, not a poll).
struct XenDomains: Sendable {
    let roster: DomainRoster
    let logger: Logger
    /// Starts serving a domain's control channel; the task is kept by the roster.
    let serve: @Sendable (DomainID, DomainName) -> Void

    /// Adds the domains xenstore lists that the daemon does not serve yet, and removes those that went away.
    func refresh() async {
        let listed: [(id: DomainID, name: String)]
        switch await OSThread.run({ Result { () throws(SluiceError) in try XenStore.domains() } }) {
        case .success(let value): listed = value
        case .failure(let error):
            logger.error("cannot read the domains from xenstore: \(error)")
            return
        }
        let known = roster.listedDomains
        var present: Set<DomainID> = [.admin]
        for (id, text) in listed where id != .admin {
            guard let name = try? DomainName(text) else {
                logger.warning("xenstore names domain \(id) '\(text)', which is not a valid domain name; ignored")
                continue
            }
            present.insert(id)
            if known[id] == name { continue }
            if known[id] != nil { _ = roster.remove(id) }
            var entry = roster.configuredEntry(name.rawValue) ?? Domain(name: name.rawValue)
            entry.powerState = "Running"
            if roster.add(id, name, entry: entry, isDisposable: false) {
                logger.notice("domain \(name) (id \(id)) appeared in xenstore")
                serve(id, name)
            }
        }
        for (id, name) in known where !present.contains(id) {
            logger.notice("domain \(name) (id \(id)) went away")
            _ = roster.remove(id)
        }
    }

    /// Reads xenstore's domains again each time its watch fires, until the task is cancelled. The wait runs on a
    /// thread of its own; it gives up every minute to read them anyway, in case a watch event was lost.
    func run() async {
        let watch: XenDomainWatch
        do {
            watch = try XenDomainWatch()
        } catch {
            logger.error("cannot watch xenstore for domains (\(error)); reading it every second instead")
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: 1_000_000_000)
                await refresh()
            }
            return
        }
        while !Task.isCancelled {
            _ = await OSThread.run { watch.wait(timeoutMilliseconds: 60_000) }
            await refresh()
        }
    }
}
