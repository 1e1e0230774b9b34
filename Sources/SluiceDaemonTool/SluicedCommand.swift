// sluiced: the admin domain's daemon. A thin wrapper over SluiceDaemon.Daemon.
import ArgumentParser
import Foundation
import Logging
import SluiceCalls
import SluiceDaemon
import SluicePolicy
import SluiceSystem
import SluiceVchan

@main
struct SluicedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluiced", abstract: "Broker policy-gated calls between domains.")

    @Option(help: "The inventory of domains (the sluice-policy eval --system format).") var inventory: String
    @Option(name: .customLong("policy-dir"), help: "A policy directory (repeatable).") var policyDirectories: [String] =
        []
    @Option(name: .customLong("compat-dir")) var compatDirectory = PolicyLoader.defaultCompatDirectory
    @Option(help: "The vchan transport: local (needs --rendezvous) or xen.") var transport = "local"
    @Option(help: "The admin domain's local vchan rendezvous socket.") var rendezvous: String?
    @Option(name: .customLong("audit-log"), help: "Append one JSON line per call here.") var auditLog: String?
    @Option(
        name: .customLong("ask-command"),
        help: "A command that answers ask decisions (JSON on stdin, allow:TARGET or deny).")
    var askCommand: String?
    @Option(help: "The toolstack's socket (sluice-host serves one): starts halted domains, makes disposables.")
    var toolstack: String?
    @Option(
        name: .customLong("toolstack-command"),
        help: "A command run as 'CMD start NAME', 'CMD create TEMPLATE', 'CMD destroy NAME' (for Xen, around xl).")
    var toolstackCommand: String?
    @Option(name: .customLong("max-calls-per-domain"), help: "Calls in flight from one domain.") var maxCallsPerDomain =
        64
    @Option(name: .customLong("max-calls"), help: "Calls in flight in all.") var maxCalls = 1_024
    @Option(name: .customLong("max-pending-asks-per-domain"), help: "Questions waiting for the user from one domain.")
    var maxPendingAsksPerDomain = 4
    @Option(name: .customLong("max-pending-asks"), help: "Questions waiting for the user in all.")
    var maxPendingAsks = 32
    @Option(name: .customLong("max-request-bytes"), help: "The longest request (SERVICE+ARG, target, source).")
    var maxRequestBytes = 65_536
    @Option(
        name: .customLong("max-requests-per-second"),
        help: "Call requests one domain may send a second (its burst too).")
    var maxRequestsPerSecond = 1_000
    @Option(
        name: .customLong("max-disposables-per-domain"),
        help: "Disposables made for one domain's calls that exist at once.")
    var maxDisposablesPerDomain = 8
    @Option(name: .customLong("max-disposables"), help: "Disposables made for calls that exist at once, in all.")
    var maxDisposables = 64
    @Option(
        name: .customLong("done-deadline-ms"),
        help: "Once a caller's side has ended and its target was told to stop, how long the target has to report.")
    var doneDeadlineMilliseconds = 10_000
    @Option(
        name: .customLong("agent-start-timeout-ms"),
        help: "How long to wait for the agent of a domain started (autostart) or made (a disposable) for a call.")
    var agentStartTimeoutMilliseconds = 60_000
    @Option(
        name: .customLong("control-send-timeout-ms"),
        help: "How long an agent may leave its control channel unread before it is cut off.")
    var controlSendTimeoutMilliseconds = 5_000

    func run() async throws {
        // A peer that goes away mid-write must be an EPIPE error, not a silent death of the whole process.
        signal(SIGPIPE, SIG_IGN)
        var logger = Logger(label: "sluiced")
        logger.logLevel =
            ProcessInfo.processInfo.environment["SLUICE_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .notice
        if let refusal = try ParentWatch.start(logging: logger).refusal { throw ValidationError(refusal) }
        guard let data = FileManager.default.contents(atPath: inventory) else {
            throw ValidationError("cannot read \(inventory)")
        }
        let parsed = try Inventory(json: Array(data))
        let ask: any AskAgent
        if let askCommand {
            ask = CommandAskAgent(command: askCommand.split(separator: " ").map(String.init))
        } else if isatty(0) == 1 {
            ask = TerminalAskAgent(input: .standardInput, output: .standardError)
        } else {
            ask = DenyingAskAgent()
        }
        guard toolstack == nil || toolstackCommand == nil else {
            throw ValidationError("--toolstack and --toolstack-command exclude each other")
        }
        let toolstackRole: (any Toolstack)? =
            toolstack.map { SocketToolstack(path: $0) } ?? toolstackCommand.map { CommandToolstack(command: $0) }
        var limits = CallLimits()
        limits.callsPerDomain = maxCallsPerDomain
        limits.callsTotal = maxCalls
        limits.pendingAsksPerDomain = maxPendingAsksPerDomain
        limits.pendingAsksTotal = maxPendingAsks
        limits.requestBytes = maxRequestBytes
        limits.requestsPerSecond = maxRequestsPerSecond
        limits.disposablesPerDomain = maxDisposablesPerDomain
        limits.disposablesTotal = maxDisposables
        limits.doneDeadline = .milliseconds(doneDeadlineMilliseconds)
        limits.agentStartTimeout = .milliseconds(agentStartTimeoutMilliseconds)
        limits.controlSendTimeout = .milliseconds(controlSendTimeoutMilliseconds)
        let daemon = try Daemon(
            configuration: .init(
                inventory: parsed,
                policyDirectories: policyDirectories.isEmpty ? ["/etc/sluice/policy.d"] : policyDirectories,
                compatDirectory: compatDirectory,
                transport: try VchanTransport.Choice.parse(transport, rendezvousPath: rendezvous),
                auditLogPath: auditLog, toolstack: toolstackRole, limits: limits),
            askAgent: ask, logger: logger,
            onConnect: { name in try? FileDescriptor.standardOutput.writeAll(Array("connected \(name)\n".utf8)) })
        await daemon.run(onListening: { try? FileDescriptor.standardOutput.writeAll(Array("listening\n".utf8)) })
    }
}
