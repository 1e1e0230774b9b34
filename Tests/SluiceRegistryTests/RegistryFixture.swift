import Foundation
import Logging
import SluiceRegistry
import SluiceSystem
import SluiceTesting
import SluiceWire

/// Three service directories (runtime, local, system) and a configuration directory, in a temporary directory.
struct RegistryFixture {
    let directory: TemporaryDirectory
    var runtime: String { directory.path + "/run" }
    var local: String { directory.path + "/local" }
    var system: String { directory.path + "/etc" }
    var config: String { directory.path + "/rpc-config" }

    init() throws {
        directory = try TemporaryDirectory(prefix: "sluice-registry")
        chmod(directory.path, 0o755)
        for path in [runtime, local, system, config] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
    }

    var registry: ServiceRegistry {
        ServiceRegistry(serviceDirectories: [runtime, local, system], configDirectories: [config])
    }

    func launcher(_ limiter: ConcurrencyLimiter = ConcurrencyLimiter()) -> HandlerLauncher {
        var logger = Logger(label: "test.registry")
        logger.logLevel = .critical
        return HandlerLauncher(registry: registry, limiter: limiter, logger: logger)
    }

    /// Writes an executable script.
    @discardableResult
    func script(_ directory: String, _ name: String, _ body: String) throws -> String {
        let path = directory + "/" + name
        try ("#!/bin/sh\n" + body + "\n").write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    func configure(_ name: String, _ text: String) throws {
        try text.write(toFile: config + "/" + name, atomically: false, encoding: .utf8)
    }

    /// Runs `call` from `source` with `input`, collecting the output.
    func run(
        _ call: String, source: String = "work", input: [UInt8] = [], context: ((inout CallContext) -> Void)? = nil,
        grace: Int = 2_000, limiter: ConcurrencyLimiter = ConcurrencyLimiter()
    ) throws -> (result: HandlerResult, output: CollectedOutput) {
        var callContext = CallContext(call: try ServiceCall(parsing: call), source: try DomainName(source))
        context?(&callContext)
        let handler = try launcher(limiter).start(callContext)
        let output = CollectedOutput()
        let result = try HandlerPump().run(handler, input: MemoryInput(input), output: output, graceMilliseconds: grace)
        return (result, output)
    }
}
