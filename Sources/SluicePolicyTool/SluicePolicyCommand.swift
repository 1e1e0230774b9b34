// sluice-policy: lint, evaluate and draw Qubes-v5 policies. A thin wrapper over SluicePolicy.
import ArgumentParser
import Foundation
import SluicePolicy
import SluiceSystem
import SluiceWire

@main
struct SluicePolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice-policy",
        abstract: "Lint, evaluate and draw Qubes policy v5 files.",
        subcommands: [Lint.self, Eval.self, Graph.self]
    )
}

struct PolicyOptions: ParsableArguments {
    @Option(
        name: .customLong("policy-dir"), help: "A policy directory (repeatable; the first wins on a shared file name).")
    var policyDirectories: [String] = []

    @Option(name: .customLong("policy-file"), help: "A single policy file instead of directories.")
    var policyFile: String?

    @Option(name: .customLong("compat-dir"), help: "Where !compat-4.0 reads old per-service files.")
    var compatDirectory: String = PolicyLoader.defaultCompatDirectory

    var loader: PolicyLoader { PolicyLoader(compatDirectory: compatDirectory) }

    /// Loads the policy, or prints why it is unusable (as JSON with `json`) and exits 2.
    func loadOrExit(json: Bool) throws -> Policy {
        do {
            return try load()
        } catch {
            if json {
                emit(
                    .object([
                        "error": .string("parse"), "message": .string(error.message), "file": .string(error.path),
                        "line": error.line.map(JSONValue.int) ?? .null,
                        "column": error.column.map(JSONValue.int) ?? .null,
                    ]))
            } else {
                print("policy unusable (every call is denied): \(error)")
            }
            throw ExitCode(2)
        }
    }

    func load(defaultDirectories: [String] = ["/etc/sluice/policy.d"]) throws(PolicyError) -> Policy {
        if let policyFile { return try loader.load(file: policyFile) }
        return try loader.load(directories: policyDirectories.isEmpty ? defaultDirectories : policyDirectories)
    }
}

func emit(_ value: JSONValue) { print(value.serialized) }

func readInventory(_ path: String?) throws -> Inventory {
    guard let path else { return Inventory(domains: []) }
    guard let data = FileManager.default.contents(atPath: path) else {
        throw ValidationError("cannot read the system file \(path)")
    }
    do {
        return try Inventory(json: Array(data))
    } catch {
        throw ValidationError(error.description)
    }
}

struct Lint: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Report every error as file:line:col, and rules that can never match. Exits 1 on errors.")

    @OptionGroup var options: PolicyOptions
    @Flag(help: "Print one JSON object.") var json = false
    @Argument(help: "Policy directories or files (in addition to --policy-dir).") var paths: [String] = []

    func run() throws {
        var all = options.policyDirectories + paths
        if let file = options.policyFile { all.append(file) }
        if all.isEmpty { all = ["/etc/sluice/policy.d"] }
        let (errors, warnings) = options.loader.lint(paths: all)
        if json {
            emit(
                .object([
                    "errors": .array(
                        errors.map { error in
                            .object([
                                "file": .string(error.path), "line": error.line.map(JSONValue.int) ?? .null,
                                "column": error.column.map(JSONValue.int) ?? .null, "message": .string(error.message),
                            ])
                        }),
                    "warnings": .array(
                        warnings.map { warning in
                            .object([
                                "file": .string(warning.path), "line": warning.line.map(JSONValue.int) ?? .null,
                                "message": .string(warning.message),
                            ])
                        }),
                ]))
        } else {
            for error in errors { print(error.description) }
            for warning in warnings { print(warning.description) }
            if errors.isEmpty { print("ok: no errors, \(warnings.count) warning(s)") }
        }
        if !errors.isEmpty { throw ExitCode(1) }
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decide one call. Exits 0 with a decision, 2 if the policy is unusable, 3 if the request is invalid.")

    @OptionGroup var options: PolicyOptions
    @Option(name: .customLong("system"), help: "The inventory of domains, as JSON.") var system: String?
    @Option(help: "The calling domain.") var source: String
    @Option(help: "The requested target (empty for @default).") var target: String = ""
    @Option(help: "SERVICE[+ARG].") var service: String?
    @Option(
        name: .customLong("service-hex"), help: "SERVICE[+ARG], hex-encoded (for bytes a command line cannot carry).")
    var serviceHex: String?
    @Option(name: .customLong("requested-source"), help: "For a relay: the RemoteVM the call is made for.")
    var requestedSource: String?
    @Flag(help: "Print one JSON object.") var json = false

    func requestError(_ message: String) -> ExitCode {
        if json {
            emit(.object(["error": .string("request"), "message": .string(message)]))
        } else {
            print("invalid request: \(message)")
        }
        return ExitCode(3)
    }

    func run() throws {
        let inventory = try readInventory(system)
        let policy = try options.loadOrExit(json: json)
        let text: String
        if let serviceHex {
            guard let bytes = Self.hex(serviceHex) else { throw requestError("--service-hex is not hexadecimal") }
            guard !bytes.contains(0), let decoded = String(validating: bytes, as: UTF8.self) else {
                throw requestError("the service holds a NUL byte or invalid UTF-8")
            }
            text = decoded
        } else if let service {
            text = service
        } else {
            throw ValidationError("give --service or --service-hex")
        }
        let call: ServiceCall
        do {
            call = try ServiceCall(parsing: text)
            _ = try DomainName(source)
            if !target.isEmpty { _ = try TargetName(target) }
            if let requestedSource { _ = try DomainName(requestedSource) }
        } catch {
            throw requestError(error.message)
        }
        let request = PolicyRequest(
            service: call.service.rawValue, argument: call.argument.rawValue, source: source, target: target,
            requestedSource: requestedSource)
        switch CompiledPolicy(policy, inventory: inventory).evaluate(request) {
        case .failure(let error):
            throw requestError(error.message)
        case .success(let decision):
            if json {
                emit(decision.json)
            } else {
                var line = "\(decision.action.rawValue)"
                if let target = decision.target { line += " target=\(target)" }
                if let targets = decision.targetsForAsk { line += " choices=\(targets.joined(separator: ","))" }
                if let reason = decision.reason { line += " reason=\(reason.rawValue)" }
                line += " rule=\(decision.rule ?? "-")"
                print(line)
            }
        }
    }

    static func hex(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else {
                return nil
            }
            bytes.append(byte)
        }
        return bytes
    }
}

struct Graph: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the allowed (solid) and asked (dashed) call graph as Graphviz DOT.")

    @OptionGroup var options: PolicyOptions
    @Option(name: .customLong("system"), help: "The inventory of domains, as JSON.") var system: String?
    @Option(help: "Only this service.") var service: String?
    @Option(help: "Also render an SVG through Graphviz's dot.") var svg: String?
    @Flag(help: "Print the edges as JSON instead of DOT.") var json = false

    func run() throws {
        let inventory = try readInventory(system)
        let policy = try options.loadOrExit(json: json)
        let edges = PolicyGraph.edges(CompiledPolicy(policy, inventory: inventory), service: service)
        let dot = PolicyGraph.dot(edges)
        if json {
            emit(
                .object([
                    "edges": .array(
                        edges.map { edge in
                            .object([
                                "source": .string(edge.source), "target": .string(edge.target),
                                "call": .string(edge.call),
                                "action": .string(edge.asks ? "ask" : "allow"),
                            ])
                        })
                ]))
        } else {
            print(dot, terminator: "")
        }
        guard let svg else { return }
        guard
            let dotPath = ["/usr/bin/dot", "/usr/local/bin/dot"].first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else {
            throw ValidationError("--svg needs Graphviz's dot: apt-get install graphviz")
        }
        let input = try SluiceSystem.Pipe()
        let child = try ChildProcess.spawn(
            path: dotPath, arguments: ["dot", "-Tsvg", "-o", svg], environment: [],
            descriptors: [(input.readEnd, 0), (.standardError, 2)])
        input.readEnd.close()
        try input.writeEnd.writeAll(Array(dot.utf8))
        input.writeEnd.close()
        let status = try child.wait()
        guard status == .exited(0) else { throw ValidationError("dot failed: \(status)") }
    }
}
