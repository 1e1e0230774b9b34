public import SluiceWire

/// A policy that cannot be used, with where and why. One such error anywhere makes the whole policy unusable,
/// and every call is denied until it is fixed (fail closed).
public struct PolicyError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The file, as the loader named it (full path).
    public var path: String
    public var line: Int?
    public var column: Int?
    public var message: String

    public init(path: String, line: Int? = nil, column: Int? = nil, message: String) {
        self.path = path
        self.line = line
        self.column = column
        self.message = message
    }

    /// `file:line:col: message`, as compilers print errors.
    public var description: String {
        var location = path
        if let line { location += ":\(line)" }
        if let column { location += ":\(column)" }
        return "\(location): \(message)"
    }

    public var sluiceError: SluiceError { SluiceError(.policyInvalid, description) }
}
