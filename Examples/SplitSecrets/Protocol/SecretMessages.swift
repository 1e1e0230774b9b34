/// The split-secrets example's messages: one JSON request on the service's stdin, one JSON reply on its stdout,
/// through `SluiceClient`'s typed call. The secret's name is also the call's argument (`example.GetSecret+NAME`),
/// so that the policy can allow, ask or deny per secret.
public struct SecretRequest: Codable, Sendable, Equatable {
    public var name: String
    /// Why the caller wants it: shown in the vault's log.
    public var purpose: String

    public init(name: String, purpose: String) {
        self.name = name
        self.purpose = purpose
    }
}

public struct SecretReply: Codable, Sendable, Equatable {
    public var name: String
    /// The secret, or nil when the vault refused (then `error` says why).
    public var value: String?
    public var error: String?

    public init(name: String, value: String?, error: String?) {
        self.name = name
        self.value = value
        self.error = error
    }
}
