internal import CSluiceLinux
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// A local user account, for running a handler as the call's user.
public struct UserAccount: Sendable, Hashable {
    public var name: String
    public var uid: UInt32
    public var gid: UInt32
    public var home: String
    public var shell: String
    public var groups: [UInt32]

    public init(name: String, uid: UInt32, gid: UInt32, home: String, shell: String, groups: [UInt32]) {
        self.name = name
        self.uid = uid
        self.gid = gid
        self.home = home
        self.shell = shell
        self.groups = groups
    }

    /// Looks `name` up in the password and group databases. Code `unknown-user` (406) if there is no such user.
    public static func lookup(_ name: String) throws(SluiceError) -> UserAccount {
        var uid: uid_t = 0
        var gid: gid_t = 0
        var home = [CChar](repeating: 0, count: 1_024)
        var shell = [CChar](repeating: 0, count: 1_024)
        var groups = [gid_t](repeating: 0, count: 256)
        var count: Int32 = 256
        let rc = sluice_user_lookup(name, &uid, &gid, &home, &shell, 1_024, &groups, &count)
        guard rc == 0 else {
            if rc == ENOENT { throw SluiceError(.unknownUser, "there is no user \(name)") }
            throw SystemCall.error("getpwnam_r(\(name))", rc)
        }
        func text(_ buffer: [CChar]) -> String {
            String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return UserAccount(
            name: name, uid: uid, gid: gid, home: text(home), shell: text(shell), groups: Array(groups[..<Int(count)]))
    }

    /// The account this process runs as.
    public static func current() -> UserAccount? {
        guard let entry = getpwuid(geteuid()) else { return nil }
        return try? lookup(String(cString: entry.pointee.pw_name))
    }

    /// Whether this process may switch to other users (it runs as root).
    public static var canSwitchUsers: Bool { geteuid() == 0 }
}
