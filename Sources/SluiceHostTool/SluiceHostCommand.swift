// sluice-host: run a local host of simulated domains. A thin wrapper over SluiceDaemon.LocalHost.
import ArgumentParser
import Foundation
import Logging
import SluiceDaemon
import SluiceHost
import SluicePolicy
import SluiceSystem

@main
struct SluiceHostCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice-host", abstract: "Start sluiced and one sluice-agent per running domain on this machine.")

    @Option(name: .customLong("run-dir")) var runDirectory: String
    @Option(help: "The inventory (the sluice-policy eval --system format).") var inventory: String
    @Option(name: .customLong("policy-dir")) var policyDirectories: [String] = []
    @Option(name: .customLong("services-root"), help: "DIR/<domain>/ is each domain's service directory.")
    var servicesRoot: String
    @Option(name: .customLong("audit-log")) var auditLog: String?
    @Option(name: .customLong("ask-command")) var askCommand: String?
    @Option(name: .customLong("max-calls-per-domain"), help: "Calls in flight from one domain (sluiced's limit).")
    var maxCallsPerDomain: Int?
    @Option(name: .customLong("max-calls"), help: "Calls in flight in all (sluiced's limit).") var maxCalls: Int?
    @Option(name: .customLong("max-pending-asks-per-domain")) var maxPendingAsksPerDomain: Int?
    @Option(name: .customLong("max-pending-asks")) var maxPendingAsks: Int?
    @Option(name: .customLong("max-request-bytes")) var maxRequestBytes: Int?
    @Option(name: .customLong("max-requests-per-second")) var maxRequestsPerSecond: Int?
    @Option(name: .customLong("max-disposables-per-domain")) var maxDisposablesPerDomain: Int?
    @Option(name: .customLong("max-disposables")) var maxDisposables: Int?
    @Option(name: .customLong("done-deadline-ms")) var doneDeadlineMilliseconds: Int?
    @Option(name: .customLong("agent-max-clients"), help: "Local callers' connections each agent serves at once.")
    var agentMaxClients: Int?
    @Option(name: .customLong("agent-max-running-calls"), help: "Calls each agent runs at once.")
    var agentMaxRunningCalls: Int?
    @Flag(
        name: .customLong("shared-uid"),
        help: "Run every domain as this process's uid, even as root (domains are then not isolated from each other).")
    var sharedUID = false
    @Option(name: .customLong("control-send-timeout-ms")) var controlSendTimeoutMilliseconds: Int?

    func run() throws {
        // A peer that goes away mid-write must be an EPIPE error, not a silent death of the whole process.
        signal(SIGPIPE, SIG_IGN)
        var logger = Logger(label: "sluice-host")
        logger.logLevel = .notice
        guard let data = FileManager.default.contents(atPath: inventory) else {
            throw ValidationError("cannot read \(inventory)")
        }
        let executables = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().path
        // Block SIGINT and SIGTERM before any thread starts, then wait for them; children get a clean mask.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        // A test or benchmark that dies without stopping its host would leave it (and, through their own watch, its
        // daemon and agents) running, holding the caller's output pipes open. Started after the mask, so the
        // watch's thread does not take SIGINT or SIGTERM either.
        if let refusal = try ParentWatch.start(logging: logger).refusal { throw ValidationError(refusal) }
        var configuration = LocalHost.Configuration(
            runDirectory: runDirectory, inventory: try Inventory(json: Array(data)),
            policyDirectories: policyDirectories,
            servicesRoot: servicesRoot, auditLogPath: auditLog, askCommand: askCommand,
            executablesDirectory: executables)
        configuration.maxCallsPerDomain = maxCallsPerDomain
        let passed: [(String, Int?)] = [
            ("--max-calls", maxCalls), ("--max-pending-asks-per-domain", maxPendingAsksPerDomain),
            ("--max-pending-asks", maxPendingAsks), ("--max-request-bytes", maxRequestBytes),
            ("--max-requests-per-second", maxRequestsPerSecond),
            ("--max-disposables-per-domain", maxDisposablesPerDomain),
            ("--max-disposables", maxDisposables), ("--done-deadline-ms", doneDeadlineMilliseconds),
            ("--control-send-timeout-ms", controlSendTimeoutMilliseconds),
        ]
        for case (let option, let value?) in passed { configuration.daemonOptions += [option, String(value)] }
        let agentPassed: [(String, Int?)] = [
            ("--max-clients", agentMaxClients), ("--max-running-calls", agentMaxRunningCalls),
        ]
        for case (let option, let value?) in agentPassed { configuration.agentOptions += [option, String(value)] }
        if sharedUID { configuration.isolation = .sharedUID }
        let host = LocalHost(configuration: configuration, logger: logger)
        do {
            try host.start()
        } catch {
            host.stop()
            throw error
        }
        try? SluiceSystem.FileDescriptor.standardOutput.writeAll(
            Array("ready: \(host.directory.names.count) domains\n".utf8))
        var received: Int32 = 0
        sigwait(&signals, &received)
        host.stop()
        // The reader may be gone by now: a failed write must not trap.
        try? SluiceSystem.FileDescriptor.standardOutput.writeAll(Array("stopped\n".utf8))
    }
}
