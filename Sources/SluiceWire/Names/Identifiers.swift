/// A Xen domain id (`domid_t`). Ordinary domains are 0 to 0x7FEF (`DOMID_FIRST_RESERVED` is 0x7FF0).
public struct DomainID: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: UInt16

    /// The largest id an ordinary domain can have.
    public static let maxOrdinary: UInt16 = 0x7FEF
    /// The admin domain, dom0.
    public static let admin = DomainID(unchecked: 0)

    public init?(rawValue: UInt16) {
        guard rawValue <= Self.maxOrdinary else { return nil }
        self.rawValue = rawValue
    }

    private init(unchecked: UInt16) { rawValue = unchecked }

    public var description: String { String(rawValue) }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A vchan port: the number that, with the peer domain, names one vchan (`data/vchan/<peer>/<port>` in
/// xenstore, a rendezvous entry on the local backend). 1 to 65535.
public struct VchanPort: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: UInt16

    /// Every domain's control channel to the daemon, as qrexec's `VCHAN_BASE_PORT`.
    public static let control = VchanPort(unchecked: 512)

    public init?(rawValue: UInt16) {
        guard rawValue != 0 else { return nil }
        self.rawValue = rawValue
    }

    private init(unchecked: UInt16) { rawValue = unchecked }

    public var description: String { String(rawValue) }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The id of one call or request on a channel: 0 to 2^53 − 1, so that any JSON reader keeps it exact.
public struct RequestID: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: UInt64

    public static let max: UInt64 = (1 << 53) - 1

    public init?(rawValue: UInt64) {
        guard rawValue <= Self.max else { return nil }
        self.rawValue = rawValue
    }

    public var description: String { String(rawValue) }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Where the two ends of a per-call data channel meet: the vchan server's peer domain and the port.
public struct Rendezvous: Hashable, Sendable {
    /// The domain at the other end of the data channel, from the receiver's point of view.
    public var domain: DomainID
    public var port: VchanPort
    /// Which end the receiver of the order is. Absent (nil) means the message's default: the caller serves
    /// (`connect`) and the target connects (`exec`). The daemon reverses it for calls into the admin domain, so
    /// that the admin domain serves every data channel it is part of (on Xen: grant pages offered by dom0, mapped
    /// by the domU, the direction the lab found reliable).
    public var role: DataChannelRole?

    public init(domain: DomainID, port: VchanPort, role: DataChannelRole? = nil) {
        self.domain = domain
        self.port = port
        self.role = role
    }
}

/// An end of a data channel: the vchan server (offers the rings) or its client (maps them).
public enum DataChannelRole: String, Hashable, Sendable {
    case server
    case client
}
