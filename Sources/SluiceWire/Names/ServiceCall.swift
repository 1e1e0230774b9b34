/// A service and its argument: what `SERVICE+ARG` names on a command line and in a policy request.
///
/// Parsing splits at the **first** `+`, so `svc+a+b` has the argument `a+b`, as in qrexec. The whole string is at
/// most `NameLimits.maxServiceCallBytes` (code `service-call-too-long`, 204).
public struct ServiceCall: Hashable, Sendable, CustomStringConvertible {
    public var service: ServiceName
    public var argument: ServiceArgument

    public init(service: ServiceName, argument: ServiceArgument = .empty) throws(SluiceError) {
        let length = service.rawValue.utf8.count + 1 + argument.rawValue.utf8.count
        guard length <= NameLimits.maxServiceCallBytes else {
            throw SluiceError(
                .serviceCallTooLong,
                "SERVICE+ARGUMENT is \(length) bytes long; the limit is \(NameLimits.maxServiceCallBytes)"
            )
        }
        self.service = service
        self.argument = argument
    }

    /// Parses `SERVICE` or `SERVICE+ARGUMENT`.
    public init(parsing text: String) throws(SluiceError) {
        guard text.utf8.count <= NameLimits.maxServiceCallBytes else {
            throw SluiceError(
                .serviceCallTooLong,
                "SERVICE+ARGUMENT is \(text.utf8.count) bytes long; the limit is \(NameLimits.maxServiceCallBytes)"
            )
        }
        if let plus = text.utf8.firstIndex(of: UInt8(ascii: "+")) {
            let service = try ServiceName(String(text[..<plus]))
            let argument = try ServiceArgument(String(text[text.utf8.index(after: plus)...]))
            try self.init(service: service, argument: argument)
        } else {
            try self.init(service: ServiceName(text))
        }
    }

    /// `SERVICE+ARGUMENT`, with the `+` always present, as qrexec's service descriptor and environment give it.
    public var fullName: String { service.rawValue + "+" + argument.rawValue }
    public var description: String { fullName }
}
