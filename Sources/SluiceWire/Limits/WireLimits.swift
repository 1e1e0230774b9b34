/// The named limits of the wire format. Each is checked before anything is allocated for the value it bounds,
/// and exceeding each one is its own `SluiceError.Code`.
///
/// The defaults are the protocol's: a peer may lower them for itself, never raise them above these.
public struct WireLimits: Sendable, Hashable {
    /// Bytes in the length prefix: two little-endian `UInt32` (header length, payload length).
    public static let prefixBytes = 8

    /// Largest whole frame, prefix included: 128 KiB. Code `frame-too-large` (100).
    public var maxFrameBytes: Int
    /// Largest JSON header: 66 048 bytes, room for a 65 000-byte `SERVICE+ARG`. Code `header-too-large` (101).
    public var maxHeaderBytes: Int
    /// Largest raw payload of one `data` frame: 64 KiB, qrexec v3's chunk size. Code `payload-too-large` (102).
    public var maxPayloadBytes: Int
    /// Deepest nesting of JSON arrays and objects in a header; the top-level object is depth 1. Code
    /// `header-too-deep` (114). Protocol messages need 2.
    public var maxHeaderDepth: Int
    /// Longest free-text field (`message`, `reason`), in UTF-8 bytes. Code `text-too-long` (125).
    public var maxTextBytes: Int

    public init(
        maxFrameBytes: Int = 131_072,
        maxHeaderBytes: Int = 66_048,
        maxPayloadBytes: Int = 65_536,
        maxHeaderDepth: Int = 4,
        maxTextBytes: Int = 1_024
    ) {
        self.maxFrameBytes = maxFrameBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.maxPayloadBytes = maxPayloadBytes
        self.maxHeaderDepth = maxHeaderDepth
        self.maxTextBytes = maxTextBytes
    }

    public static let `default` = WireLimits()
}

/// The named limits of names, shared by the wire, the policy and the registry.
public enum NameLimits {
    /// Longest service name (the part before `+`): 255 bytes, `NAME_MAX`, because it is a file name.
    public static let maxServiceNameBytes = 255
    /// Longest `SERVICE+ARGUMENT` string: 65 000 bytes, qrexec's `MAX_SERVICE_NAME_LEN`.
    public static let maxServiceCallBytes = 65_000
    /// Longest domain name: 31 bytes, as Qubes allows.
    public static let maxDomainNameBytes = 31
    /// Longest requested target (`@dispvm:uuid:...` is 49): 63 bytes, qrexec's field size less its NUL.
    public static let maxTargetBytes = 63
}
