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

extension SluiceError.Code {
    // MARK: 3xx: policy

    /// The policy cannot be loaded (syntax, file name, include); every call is denied until it is fixed.
    public static let policyInvalid = Self(rawValue: 300)
    /// A request the policy cannot evaluate: an invalid requested target (`@anyvm`, `@dispvm:X` for a qube that
    /// is not a disposable template), an unknown source, a `requested_source` the caller may not use.
    public static let invalidRequest = Self(rawValue: 301)
    /// The policy refused the call. The message names no policy details.
    public static let refusedByPolicy = Self(rawValue: 302)
}
