// sluice-agent: one per domain. A thin wrapper over SluiceAgent.Agent.
import ArgumentParser
import Foundation
import Logging
import SluiceAgent
import SluiceRegistry
import SluiceSystem
import SluiceVchan
import SluiceWire

@main
struct SluiceAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice-agent", abstract: "Serve this domain's callers and run the calls the daemon orders.")

    @Option(help: "This domain's name.") var domain: String
    @Option(name: .customLong("domain-id"), help: "This domain's id (on Xen, read from xenstore by default).")
    var domainID: UInt16?
    @Option(help: "The vchan transport: local (needs --rendezvous) or xen.") var transport = "local"
    @Option(help: "This domain's local vchan rendezvous socket.") var rendezvous: String?
    @Option(help: "The local callers' socket.") var socket: String
    @Option(name: .customLong("services"), help: "A service directory (repeatable, in lookup order).") var services:
        [String] = []
    @Option(name: .customLong("config-dir"), help: "An rpc-config directory (repeatable).") var configDirectories:
        [String] = []
    @Option(name: .customLong("default-user")) var defaultUser: String?
    @Option(
        help: """
            Who may call through this agent, by the caller's kernel credentials: same-user (this agent's uid and root; \
            the socket is 0600), any (every local process: a domain that is a virtual machine), or a comma-separated \
            list of uids (and root). Default: same-user on the local transport, any on Xen.
            """)
    var callers: String?
    @Option(name: .customLong("max-clients"), help: "Local callers' connections served at once.") var maxClients = 256
    @Option(name: .customLong("max-running-calls"), help: "Calls run at once (each a thread and a handler).")
    var maxRunningCalls = 256

    func run() async throws {
        // A peer that goes away mid-write must be an EPIPE error, not a silent death of the whole process.
        signal(SIGPIPE, SIG_IGN)
        var logger = Logger(label: "sluice-agent")
        logger.logLevel =
            ProcessInfo.processInfo.environment["SLUICE_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .notice
        if let refusal = try ParentWatch.start(logging: logger).refusal { throw ValidationError(refusal) }
        let choice = try VchanTransport.Choice.parse(transport, rendezvousPath: rendezvous)
        guard let raw = try domainID ?? (choice == .xen ? XenStore.ownDomainID() : nil),
            let id = DomainID(rawValue: raw)
        else { throw ValidationError("give --domain-id (the local transport cannot find it out)") }
        let registry = ServiceRegistry(
            serviceDirectories: services.isEmpty ? ServiceRegistry.defaultServiceDirectories : services,
            configDirectories: configDirectories.isEmpty ? ServiceRegistry.defaultConfigDirectories : configDirectories)
        let rule: Agent.Callers
        let callerRule = callers ?? (choice == .xen ? "any" : "same-user")
        switch callerRule {
        case "same-user": rule = .sameUser
        case "any": rule = .anyone
        default:
            let uids = callerRule.split(separator: ",").map { UInt32($0) }
            guard !uids.isEmpty, uids.allSatisfy({ $0 != nil }) else {
                throw ValidationError("--callers: same-user, any, or a comma-separated list of uids")
            }
            rule = .uids(Set(uids.compactMap { $0 }))
        }
        let agent = try Agent(
            configuration: .init(
                domain: try DomainName(domain), domainID: id, transport: choice, clientSocketPath: socket,
                registry: registry, defaultUser: defaultUser, callers: rule, maxClients: maxClients,
                maxRunningCalls: maxRunningCalls),
            logger: logger)
        try await agent.run()
    }
}
