public import Logging
import SluiceLocks
public import SluicePolicy
public import SluiceSystem
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// Who each domain's processes run as under `sluice-host`: on the local backend a domain is only as isolated as the
/// kernel keeps its processes apart, so each domain runs as a user of its own.
///
/// When `sluice-host` runs as root, each domain's agent (and so each of its handlers) runs as the inventory's `user`
/// or `uid` for it, else as the system user `sluice-<name>`, made with `useradd` the first time and reused after. A
/// disposable gets a user of its own for its life, removed (with every process it left) when it is destroyed. The
/// admin domain runs as root. When `sluice-host` is not root, every domain shares its uid and nothing keeps them
/// apart; the host says so at start-up (docs/threat-model.md, "The local backend").
public final class DomainUsers: Sendable {
    /// Whether each domain has a user of its own.
    public let isolating: Bool
    private let logger: Logger
    /// `useradd` and `userdel` lock the account files: one at a time from this process.
    private let administration = Lock()

    public init(isolating: Bool, logger: Logger) {
        self.isolating = isolating
        self.logger = logger
    }

    /// The account `domain`'s processes run as (nil: the host's own, when not isolating or for the admin domain).
    public func account(for name: DomainName, entry: Domain?) throws(SluiceError) -> UserAccount? {
        guard isolating, name != .admin else { return nil }
        if let uid = entry?.localUID { return Self.account(uid: uid) }
        if let user = entry?.localUser { return try UserAccount.lookup(user) }
        return try ensure(Self.userName(for: name))
    }

    /// The system user's name for a domain: `sluice-NAME`, shortened with a stable hash past the 32 bytes a user name
    /// may have.
    public static func userName(for domain: DomainName) -> String {
        let name = "sluice-" + domain.rawValue
        guard name.utf8.count > 32 else { return name }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in domain.rawValue.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let hex = String(hash & 0xFFFF_FFFF, radix: 16)
        return "sluice-" + String(domain.rawValue.prefix(16)) + "-" + String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// An account for a bare uid (which may have no name): its passwd entry if it has one.
    static func account(uid: UInt32) -> UserAccount {
        if let entry = getpwuid(uid), let account = try? UserAccount.lookup(String(cString: entry.pointee.pw_name)) {
            return account
        }
        return UserAccount(name: String(uid), uid: uid, gid: uid, home: "/", shell: "/bin/sh", groups: [uid])
    }

    /// The system user `name`, made if it does not exist yet.
    private func ensure(_ name: String) throws(SluiceError) -> UserAccount {
        if let account = try? UserAccount.lookup(name) { return account }
        try administration.withLock { () throws(SluiceError) in
            let arguments = [
                "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell",
                "/usr/sbin/nologin", name,
            ]
            if (try? UserAccount.lookup(name)) != nil { return }
            do throws(SluiceError) {
                try Self.run("/usr/sbin/useradd", arguments)
            } catch {
                // Another process (a second host started at the same moment) may have made it meanwhile, or held
                // the account files' lock: look again, then try once more.
                usleep(100_000)
                if (try? UserAccount.lookup(name)) != nil { return }
                try Self.run("/usr/sbin/useradd", arguments)
            }
            logger.notice("made the system user \(name) for its domain")
        }
        return try UserAccount.lookup(name)
    }

    /// Checks that `account` can reach what its agent needs (`executable` to run, `directories` to search and read),
    /// by asking the kernel as that user: a run directory under a parent only root may search would otherwise fail
    /// later, in every agent, as "permission denied".
    public func checkAccess(_ account: UserAccount, executable: String, directories: [String]) throws(SluiceError) {
        var script = "test -x \"$0\" || { echo \"cannot run $0\"; exit 1; }; "
        script += "for d in \"$@\"; do test -x \"$d\" || { echo \"cannot reach $d\"; exit 1; }; done"
        let output = try Pipe()
        let child = try ChildProcess.spawn(
            path: "/bin/sh", arguments: ["sh", "-c", script, executable] + directories,
            environment: ["PATH=/usr/bin:/bin"], descriptors: [(output.writeEnd, 1)], newProcessGroup: false,
            workingDirectory: "/", user: account)
        output.writeEnd.close()
        let text = String(decoding: (try? output.readEnd.readToEnd()) ?? [], as: UTF8.self)
        output.readEnd.close()
        guard try child.wait() == .exited(0) else {
            throw SluiceError(
                .systemCallFailed,
                "the domain user \(account.name) \(text.split(separator: "\n").first.map(String.init) ?? "cannot reach its files"): make every directory on the way searchable by other users (chmod o+x), or run sluice-host with --shared-uid (domains then share a uid and are not isolated)"
            )
        }
    }

    /// Removes a disposable's user: every process it left is killed first, so nothing of it outlives it.
    public func remove(_ account: UserAccount) {
        guard isolating, account.uid != 0, account.name.hasPrefix("sluice-") else { return }
        // As the user itself, `kill -KILL -1` reaches every process of that uid and nothing else.
        if let killer = try? ChildProcess.spawn(
            path: "/bin/kill", arguments: ["kill", "-KILL", "-1"], environment: [], descriptors: [],
            newProcessGroup: true, workingDirectory: "/", user: account)
        {
            _ = try? killer.wait()
        }
        administration.withLock {
            do throws(SluiceError) {
                try Self.run("/usr/sbin/userdel", [account.name])
            } catch {
                logger.warning("cannot remove the user \(account.name): \(error.message)")
            }
        }
    }

    /// Runs an account tool and fails with its own words if it fails.
    private static func run(_ path: String, _ arguments: [String]) throws(SluiceError) {
        let errors = try Pipe()
        let child = try ChildProcess.spawn(
            path: path, arguments: [path] + arguments, environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            descriptors: [(errors.writeEnd, 2)])
        errors.writeEnd.close()
        let text = String(decoding: (try? errors.readEnd.readToEnd()) ?? [], as: UTF8.self)
        errors.readEnd.close()
        let status = try child.wait()
        guard status == .exited(0) else {
            throw SluiceError(
                .systemCallFailed, "\(path) \(arguments.joined(separator: " ")) failed (\(status)): \(text)")
        }
    }
}
