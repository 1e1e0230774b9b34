public import SluiceWire

/// One connection of a domain's agent to the daemon: its control channel from hello to close. A reconnect is a new
/// session, so a message is always judged by the exact channel it arrived on, never by a name it carries.
public struct SessionID: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "session \(rawValue)" }
}

/// A session's domain, as the transport vouches for it (the vchan it arrived on).
public struct SessionInfo: Hashable, Sendable {
    public var id: SessionID
    public var domain: DomainID
    public var name: DomainName
}

/// A call id: chosen by the daemon at random in 1 to 2^53 − 1 (the wire's exact range), so that an id proves nothing
/// and reveals nothing (not how many calls ran before). Every message that names a call is checked against the
/// sender's part in it anyway.
public typealias CallID = RequestID
