/// A service argument, without the `+` that introduces it: 0 or more bytes of `[A-Za-z0-9._+-]`.
///
/// The empty argument is what a call without `+` carries, as in qrexec (`svc` is `svc+`). The length is bounded
/// together with the service name by `NameLimits.maxServiceCallBytes`. Code `invalid-argument` (201).
public struct ServiceArgument: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: String

    public static let empty = ServiceArgument(unchecked: "")

    public init(_ text: String) throws(SluiceError) {
        let bytes = text.utf8
        guard bytes.count < NameLimits.maxServiceCallBytes else {
            throw SluiceError(
                .invalidArgument,
                "the argument is \(bytes.count) bytes long; the limit is \(NameLimits.maxServiceCallBytes - 2)"
            )
        }
        for byte in bytes where !NameCharset.isArgumentByte(byte) {
            throw SluiceError(
                .invalidArgument, "the argument \(NameCharset.quoted(text)) has a byte outside [A-Za-z0-9._+-]")
        }
        rawValue = text
    }

    private init(unchecked: String) { rawValue = unchecked }

    public var isEmpty: Bool { rawValue.isEmpty }
    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}
