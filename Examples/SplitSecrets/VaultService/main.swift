// sluice-example-vault: the vault domain's example.GetSecret service. It reads one SecretRequest (JSON) from stdin
// and answers one SecretReply on stdout with the secret from a JSON object of name -> value: the file named
// SERVICE-FILE.secrets.json beside the service file when there is one (handlers get a clean environment), else
// ~/.vault/secrets.json. The policy has already decided who may ask for which name; the vault checks that the
// request names the secret the call's argument names, so a caller cannot ask for one secret under another's rule.
import Foundation
import SplitSecretsProtocol

let environment = ProcessInfo.processInfo.environment
let argument = environment["QREXEC_SERVICE_ARGUMENT"] ?? ""
let caller = environment["QREXEC_REMOTE_DOMAIN"] ?? "?"
let beside = CommandLine.arguments[0] + ".secrets.json"
let path = FileManager.default.fileExists(atPath: beside) ? beside : NSHomeDirectory() + "/.vault/secrets.json"

func answer(_ reply: SecretReply, status: Int32) -> Never {
    FileHandle.standardOutput.write((try? JSONEncoder().encode(reply)) ?? Data())
    exit(status)
}

/// The request: stdin up to its end, at most 4 KiB (a larger one is malformed).
func readRequest() -> Data {
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4_096)
    while bytes.count <= 4_096 {
        let count = read(0, &buffer, buffer.count)
        if count <= 0 { break }
        bytes += buffer[..<count]
    }
    return Data(bytes)
}

let input = readRequest()
guard input.count <= 4_096, let request = try? JSONDecoder().decode(SecretRequest.self, from: input) else {
    answer(SecretReply(name: argument, value: nil, error: "malformed request"), status: 2)
}
guard request.name == argument else {
    answer(SecretReply(name: request.name, value: nil, error: "the request must name the call's argument"), status: 3)
}
guard let data = FileManager.default.contents(atPath: path),
    let secrets = try? JSONDecoder().decode([String: String].self, from: data)
else {
    answer(SecretReply(name: request.name, value: nil, error: "the vault has no readable secrets file"), status: 4)
}
guard let value = secrets[request.name] else {
    answer(SecretReply(name: request.name, value: nil, error: "no such secret"), status: 5)
}
FileHandle.standardError.write(Data("vault: gave \(request.name) to \(caller) for '\(request.purpose)'\n".utf8))
answer(SecretReply(name: request.name, value: value, error: nil), status: 0)
