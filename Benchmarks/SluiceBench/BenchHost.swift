import Foundation
import SluiceClient
import SluiceSystem
import SluiceTesting
import SluiceWire

/// A real `sluice-host` for the whole-system benchmarks: an inventory of running domains plus `rogue` (halted, so a
/// hostile probe can take its control channel), a policy file, and vault's services as symlinks or scripts.
final class BenchHost: Sendable {
    let directory: TemporaryDirectory
    var root: String { directory.path }
    var run: String { root + "/run" }
    private let host: ChildProcess
    private let output: FileDescriptor

    /// - Parameters:
    ///   - services: vault's services: name → target of a symlink (a program), or `#!` script text.
    init(domains: [String], policy: String, services: [String: String], options: [String] = []) throws {
        directory = try TemporaryDirectory(prefix: "sluice-bench-host")
        let root = directory.path
        var inventory =
            #"{"name": "dom0", "type": "AdminVM", "power_state": "Running"}, {"name": "vault", "power_state": "Running"}, {"name": "rogue", "power_state": "Halted"}"#
        for domain in domains { inventory += #", {"name": "\#(domain)", "power_state": "Running"}"# }
        try #"{"domains": [\#(inventory)]}"#.write(toFile: root + "/inventory.json", atomically: false, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: root + "/policy", withIntermediateDirectories: true)
        try policy.write(toFile: root + "/policy/30-bench.policy", atomically: false, encoding: .utf8)
        let vault = root + "/services/vault"
        try FileManager.default.createDirectory(atPath: vault, withIntermediateDirectories: true)
        for (name, body) in services {
            if body.hasPrefix("#!") {
                try body.write(toFile: vault + "/" + name, atomically: false, encoding: .utf8)
                chmod(vault + "/" + name, 0o755)
            } else {
                try FileManager.default.createSymbolicLink(atPath: vault + "/" + name, withDestinationPath: body)
            }
        }
        let hostPath = BuiltProducts.path(of: "sluice-host")
        let pipe = try SluiceSystem.Pipe()
        let log = open(root + "/host.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        host = try ChildProcess.spawn(
            path: hostPath,
            arguments: [
                hostPath, "--run-dir", root + "/run", "--inventory", root + "/inventory.json", "--policy-dir",
                root + "/policy", "--services-root", root + "/services",
            ] + options,
            environment: ["PATH=/usr/bin:/bin", ParentWatch.askingChildren]
                + (getenv("SLUICE_LOG_LEVEL").map { ["SLUICE_LOG_LEVEL=\(String(cString: $0))"] } ?? []),
            descriptors: [(pipe.writeEnd, 1), (FileDescriptor(rawValue: log), 2)])
        close(log)
        pipe.writeEnd.close()
        output = pipe.readEnd
        var text = ""
        while !text.contains("ready") {
            guard try Readiness.wait(output, timeoutMilliseconds: 60_000).first else {
                throw VchanScenario.Failure("no ready")
            }
            let bytes = try output.read(upTo: 1_024)
            if bytes.isEmpty { throw VchanScenario.Failure("sluice-host exited") }
            text += String(decoding: bytes, as: UTF8.self)
        }
    }

    func stop() {
        host.send(signal: SIGTERM)
        _ = try? host.wait()
        output.close()
        directory.remove()
    }

    func endpoints(_ domain: String) -> CallerSide.Endpoints {
        CallerSide.Endpoints(agentSocket: run + "/\(domain)/agent.sock", rendezvousPath: run + "/\(domain)/vchan.sock")
    }

    /// Starts `sluice-vchan-probe` with `arguments` as domain `rogue`'s agent.
    func probe(_ arguments: [String]) throws -> ChildProcess {
        let path = BuiltProducts.path(of: "sluice-vchan-probe")
        let null = FileDescriptor(rawValue: open("/dev/null", O_RDWR | O_CLOEXEC))
        defer { null.close() }
        return try ChildProcess.spawn(
            path: path,
            arguments: [path] + arguments + [
                "--server", "0", "--port", "512", "--rendezvous", run + "/rogue/vchan.sock",
            ],
            environment: [], descriptors: [(null, 1), (null, 2)])
    }

    /// A `sluice-call` from `domain` to vault's `bench.Zero` whose stdout is a pipe nobody reads: a data channel never
    /// read. Returns what stops it.
    func slowReader(from domain: String, errors: FileDescriptor) throws -> () -> Void {
        let path = BuiltProducts.path(of: "sluice-call")
        let pipe = try SluiceSystem.Pipe()
        let reader = try ChildProcess.spawn(
            path: path, arguments: [path, "--agent", run + "/\(domain)/agent.sock", "vault", "bench.Zero"],
            environment: [], descriptors: [(pipe.writeEnd, 1), (errors, 2)])
        pipe.writeEnd.close()
        return {
            reader.send(signal: SIGKILL)
            _ = try? reader.wait()
            pipe.readEnd.close()
        }
    }

    /// The oldest process whose command line contains `pattern`.
    static func pid(of pattern: String) -> Int32? {
        guard let output = try? SluiceSystem.Pipe(),
            let child = try? ChildProcess.spawn(
                path: "/usr/bin/pgrep", arguments: ["pgrep", "-o", "-f", "--", pattern], environment: [],
                descriptors: [(output.writeEnd, 1)])
        else { return nil }
        output.writeEnd.close()
        let text = String(decoding: (try? output.readEnd.readToEnd()) ?? [], as: UTF8.self)
        output.readEnd.close()
        _ = try? child.wait()
        return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Open descriptors and resident kilobytes of a process.
    static func footprint(_ pid: Int32) -> (descriptors: Int, residentKilobytes: Int) {
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return (descriptors, Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1)
    }
}

/// The p50 and p99 of `values`.
func percentiles(_ values: [Double]) -> (p50: Double, p99: Double) {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return (0, 0) }
    return (sorted[sorted.count / 2], sorted[min(sorted.count - 1, sorted.count * 99 / 100)])
}
