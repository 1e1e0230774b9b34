// sluice-example-secret NAME [PURPOSE]: asks the vault domain for one secret through SluiceClient's typed call and
// prints it. Exit 0 with the secret; 126 if the policy (or the user, for `ask`) refused; 1 for any other failure.
import Foundation
import SluiceClient
import SplitSecretsProtocol

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: sluice-example-secret NAME [PURPOSE]\n".utf8))
    exit(2)
}
let name = arguments[1]
let purpose = arguments.count > 2 ? arguments[2] : "unspecified"
let vault = ProcessInfo.processInfo.environment["VAULT_DOMAIN"] ?? "vault"
do {
    let reply = try await SluiceClient().call(
        "example.GetSecret+\(name)", on: vault, request: SecretRequest(name: name, purpose: purpose),
        as: SecretReply.self)
    guard let value = reply.value else {
        FileHandle.standardError.write(Data("the vault said: \(reply.error ?? "no")\n".utf8))
        exit(1)
    }
    print(value)
} catch let error as SluiceError where error.code == .refusedByPolicy {
    FileHandle.standardError.write(Data("Request refused\n".utf8))
    exit(126)
} catch {
    FileHandle.standardError.write(Data("sluice-example-secret: \(error)\n".utf8))
    exit(1)
}
