/// The user a handler runs as (policy `user=`, service config `force-user`): 1 to 32 bytes of `[A-Za-z0-9._-]`,
/// not starting with `-`. Code `invalid-domain-name` is not reused: a bad user is `invalid-argument` (201)
/// because it reaches the target as an argument of the exec order.
public struct UserName: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public static let maxBytes = 32

    public init(_ text: String) throws(SluiceError) {
        let bytes = text.utf8
        guard let first = bytes.first, bytes.count <= Self.maxBytes, first != UInt8(ascii: "-") else {
            throw SluiceError(
                .invalidArgument, "the user name \(NameCharset.quoted(text)) is empty, too long or starts with '-'")
        }
        for byte in bytes where !NameCharset.isNameByte(byte) {
            throw SluiceError(
                .invalidArgument, "the user name \(NameCharset.quoted(text)) has a byte outside [A-Za-z0-9._-]")
        }
        rawValue = text
    }

    public var description: String { rawValue }
}
