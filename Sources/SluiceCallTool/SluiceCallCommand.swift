// sluice-call: call a service in another domain. Exits with the handler's code; 126 refused, 127 unknown service,
// 125 other failures, 128+n if the handler died by signal n.
import SluiceCaller
import SluiceSystem
import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

func usage() -> Never {
    try? FileDescriptor.standardError.writeAll(
        Array("usage: sluice-call [--agent SOCKET] [--transport local|xen] TARGET SERVICE[+ARG]\n".utf8))
    exit(125)
}

signal(SIGPIPE, SIG_IGN)
var arguments = Array(CommandLine.arguments.dropFirst())
var agent: String?
var transport: String?
while let option = arguments.first, option == "--agent" || option == "--transport" {
    guard arguments.count >= 2 else { usage() }
    if option == "--agent" { agent = arguments[1] } else { transport = arguments[1] }
    arguments.removeFirst(2)
}
guard arguments.count == 2 else { usage() }
do {
    let target = try TargetName(arguments[0].isEmpty ? "@default" : arguments[0])
    let call = try ServiceCall(parsing: arguments[1])
    // Ctrl-C (and SIGTERM, SIGHUP) cancel the call: the handler is stopped and its status still comes back.
    let interrupts = try InterruptSignals.descriptor()
    exit(
        CallerSide.run(
            call, target: target, endpoints: .resolve(agent: agent, transport: transport), input: .standardInput,
            output: .standardOutput,
            errorOutput: .standardError, cancel: interrupts))
} catch {
    try? FileDescriptor.standardError.writeAll(Array("sluice-call: \(error.message)\n".utf8))
    exit(125)
}
