/// A domain's name such as `work` or `dom0`: 1 to 31 bytes, a letter first, then `[A-Za-z0-9._-]` (the Qubes
/// qube-name rule). Code `invalid-domain-name` (202).
public struct DomainName: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: String

    /// The admin domain's canonical name.
    public static let admin = DomainName(unchecked: "dom0")

    public init(_ text: String) throws(SluiceError) {
        let bytes = text.utf8
        guard let first = bytes.first else { throw SluiceError(.invalidDomainName, "the domain name is empty") }
        guard bytes.count <= NameLimits.maxDomainNameBytes else {
            throw SluiceError(
                .invalidDomainName,
                "the domain name is \(bytes.count) bytes long; the limit is \(NameLimits.maxDomainNameBytes)"
            )
        }
        guard NameCharset.isLetter(first) else {
            throw SluiceError(
                .invalidDomainName, "the domain name \(NameCharset.quoted(text)) does not start with a letter")
        }
        for byte in bytes where !NameCharset.isNameByte(byte) {
            throw SluiceError(
                .invalidDomainName,
                "the domain name \(NameCharset.quoted(text)) has a byte outside [A-Za-z0-9._-]"
            )
        }
        rawValue = text
    }

    private init(unchecked: String) { rawValue = unchecked }

    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}
