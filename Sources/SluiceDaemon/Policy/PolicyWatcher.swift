import Logging
import SluiceLocks
import SluicePolicy

#if canImport(Glibc)
    import Glibc
#endif

/// Loads the policy, and loads it again when a file in its directories changes (their names, times and sizes are
/// compared every second). A policy that cannot be loaded denies everything until it is fixed (fail closed).
struct PolicyWatcher: Sendable {
    let store: PolicyStore
    let directories: [String]
    let compatDirectory: String
    let roster: DomainRoster
    let logger: Logger

    /// Loads the policy again now.
    func reload() {
        let loader = PolicyLoader(compatDirectory: compatDirectory)
        let directories = directories
        if let error = store.reload(
            inventory: roster.inventory, { () throws(PolicyError) in try loader.load(directories: directories) })
        {
            logger.error("the policy is unusable, every call is denied: \(error)")
        } else {
            logger.info("policy loaded")
        }
    }

    /// Reloads whenever the files change, until the task is cancelled.
    func run() async {
        var last = signature()
        while !Task.isCancelled {
            try? await Task.sleep(nanoseconds: 1_000_000_000)
            let current = signature()
            if current != last {
                last = current
                reload()
            }
        }
    }

    private func signature() -> [String] {
        var entries: [String] = []
        for directory in directories {
            guard let handle = opendir(directory) else { continue }
            defer { closedir(handle) }
            while let entry = readdir(handle) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) {
                    String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self)
                }
                var info = stat()
                if stat(directory + "/" + name, &info) == 0 {
                    entries.append(
                        "\(directory)/\(name):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec):\(info.st_size)")
                }
            }
        }
        return entries.sorted()
    }
}
