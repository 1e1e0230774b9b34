import Foundation
import SluicePolicy
import SluiceTesting
import SluiceWire
import Testing

/// Policy files in a real temporary directory, loaded with the real loader.
struct PolicyFixture {
    let directory: TemporaryDirectory
    var policyDirectory: String { directory.path + "/policy.d" }
    var compatDirectory: String { directory.path + "/compat" }

    init(_ files: [String: String], compat: [String: String] = [:], extra: [String: String] = [:]) throws {
        directory = try TemporaryDirectory(prefix: "sluice-policy")
        try FileManager.default.createDirectory(atPath: directory.path + "/policy.d", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: directory.path + "/compat", withIntermediateDirectories: true)
        for (name, text) in files { try write("policy.d/" + name, text) }
        for (name, text) in compat { try write("compat/" + name, text) }
        for (name, text) in extra { try write(name, text) }
    }

    func write(_ relative: String, _ text: String) throws {
        let path = directory.path + "/" + relative
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }

    func load() throws(PolicyError) -> Policy {
        try PolicyLoader(compatDirectory: compatDirectory).load(directories: [policyDirectory])
    }

    func compile(_ inventory: Inventory = .standard) throws -> CompiledPolicy {
        CompiledPolicy(try load(), inventory: inventory)
    }

    /// The first load error, or nil.
    func loadError() -> PolicyError? {
        do {
            _ = try load()
            return nil
        } catch {
            return error
        }
    }
}

/// Decides `call` from `source` to `target` under a one-file policy.
func decide(
    _ policy: String, _ source: String, _ target: String, _ call: String = "test.Service",
    inventory: Inventory = .standard
)
    throws -> Decision
{
    let fixture = try PolicyFixture(["30-test.policy": policy])
    defer { fixture.directory.remove() }
    return try decide(try fixture.compile(inventory), source, target, call)
}

func decide(_ compiled: CompiledPolicy, _ source: String, _ target: String, _ call: String = "test.Service") throws
    -> Decision
{
    let parsed = try ServiceCall(parsing: call)
    let request = PolicyRequest(
        service: parsed.service.rawValue, argument: parsed.argument.rawValue, source: source, target: target)
    return try compiled.evaluate(request).get()
}

extension Inventory {
    /// The test system: an admin domain, app qubes with tags, disposable templates, a halted qube, an internal
    /// qube, a template, and RemoteVMs with and without a relay.
    static let standard = Inventory(domains: [
        Domain(name: "dom0", type: "AdminVM", tags: ["admin-tag"], uuid: PolicyToken.adminUUID, powerState: "Running"),
        Domain(
            name: "work", tags: ["work", "trusted"], uuid: "11111111-1111-1111-1111-111111111111",
            defaultDispVM: "work-dvm",
            powerState: "Running"),
        Domain(name: "vault", tags: ["secret"], uuid: "22222222-2222-2222-2222-222222222222", powerState: "Halted"),
        Domain(name: "personal", tags: ["trusted"], powerState: "Running"),
        Domain(name: "untrusted", defaultDispVM: "personal-dvm", powerState: "Running"),
        Domain(
            name: "work-dvm", tags: ["dvm-work", "work"], templateForDispVMs: true, defaultDispVM: "work-dvm",
            powerState: "Halted"),
        Domain(name: "personal-dvm", tags: ["dvm-personal"], templateForDispVMs: true, powerState: "Halted"),
        Domain(name: "sys-gui", powerState: "Running", isInternal: true),
        Domain(name: "debian-12", type: "TemplateVM", powerState: "Halted"),
        Domain(name: "relay", powerState: "Running"),
        Domain(name: "remote1", type: "RemoteVM", relayVM: "relay", transportRPC: "qubesair.SSHProxy"),
        Domain(name: "remote-broken", type: "RemoteVM"),
    ])
}
