/// The target a caller asks for, before policy resolves it: a domain name, `dom0`, or a keyword form such as
/// `@default`, `@adminvm`, `@dispvm`, `@dispvm:NAME` or `uuid:UUID`.
///
/// The wire checks only the shape: 1 to 63 bytes of `[A-Za-z0-9._:@-]`. Which keywords a request may use is the
/// policy's question (`@anyvm` is well-formed here and refused there). Code `invalid-target` (203).
public struct TargetName: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    /// The target a caller sends when it leaves the choice to policy.
    public static let `default` = TargetName(unchecked: "@default")

    public init(_ text: String) throws(SluiceError) {
        let bytes = text.utf8
        guard !bytes.isEmpty else { throw SluiceError(.invalidTarget, "the target is empty") }
        guard bytes.count <= NameLimits.maxTargetBytes else {
            throw SluiceError(
                .invalidTarget,
                "the target is \(bytes.count) bytes long; the limit is \(NameLimits.maxTargetBytes)"
            )
        }
        for byte in bytes where !NameCharset.isTargetByte(byte) {
            throw SluiceError(
                .invalidTarget, "the target \(NameCharset.quoted(text)) has a byte outside [A-Za-z0-9._:@-]")
        }
        rawValue = text
    }

    public init(_ domain: DomainName) { rawValue = domain.rawValue }

    private init(unchecked: String) { rawValue = unchecked }

    public var description: String { rawValue }
}
