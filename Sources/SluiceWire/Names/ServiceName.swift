/// A service name such as `qubes.Filecopy`: 1 to 255 bytes of `[A-Za-z0-9._-]`, never `.` or `..`.
///
/// It names a file in the service directories, so it is bounded by `NAME_MAX` and can never be a path.
/// Code `invalid-service-name` (200).
public struct ServiceName: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: String

    public init(_ text: String) throws(SluiceError) {
        let bytes = text.utf8
        guard !bytes.isEmpty else { throw SluiceError(.invalidServiceName, "the service name is empty") }
        guard bytes.count <= NameLimits.maxServiceNameBytes else {
            throw SluiceError(
                .invalidServiceName,
                "the service name is \(bytes.count) bytes long; the limit is \(NameLimits.maxServiceNameBytes)"
            )
        }
        guard text != "." && text != ".." else {
            throw SluiceError(.invalidServiceName, "the service name may not be \(NameCharset.quoted(text))")
        }
        for byte in bytes where !NameCharset.isNameByte(byte) {
            throw SluiceError(
                .invalidServiceName,
                "the service name \(NameCharset.quoted(text)) has a byte outside [A-Za-z0-9._-]"
            )
        }
        rawValue = text
    }

    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}
