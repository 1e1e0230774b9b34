import Foundation
import SluiceClient
import SluiceSystem
import SluiceTesting
import SluiceWire

/// Whole calls through a real sluice-host (release binaries): a VM→VM call with a new sluice-call process, the same
/// call from this long-lived process through SluiceClient, a socket service, bytes through cat each way, and 1 000
/// calls in flight across 50 domains. Baselines: posix_spawn of /bin/true (the floor of a new-process call), twice.
enum CallBenchmarks {
    static func run() throws -> [Row] {
        let directory = try TemporaryDirectory(prefix: "sluice-call-bench")
        defer { directory.remove() }
        let root = directory.path
        let domains = (0..<50).map { "d\($0)" }
        var inventory =
            #"{"name": "dom0", "type": "AdminVM", "power_state": "Running"}, {"name": "vault", "power_state": "Running"}"#
        for domain in ["work"] + domains { inventory += #", {"name": "\#(domain)", "power_state": "Running"}"# }
        try #"{"domains": [\#(inventory)]}"#.write(toFile: root + "/inventory.json", atomically: false, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: root + "/policy", withIntermediateDirectories: true)
        try "bench.True * @anyvm vault allow\nbench.Cat * @anyvm vault allow\nbench.Socket * @anyvm vault allow\n"
            .write(toFile: root + "/policy/30-bench.policy", atomically: false, encoding: .utf8)
        let services = root + "/services/vault"
        try FileManager.default.createDirectory(atPath: services, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: services + "/bench.True", withDestinationPath: "/bin/true")
        try FileManager.default.createSymbolicLink(atPath: services + "/bench.Cat", withDestinationPath: "/bin/cat")
        let echo = try EchoServer(path: services + "/bench.Socket")
        defer { echo.stop() }

        let hostPath = BuiltProducts.path(of: "sluice-host")
        let out = try SluiceSystem.Pipe()
        let host = try ChildProcess.spawn(
            path: hostPath,
            arguments: [
                hostPath, "--run-dir", root + "/run", "--inventory", root + "/inventory.json", "--policy-dir",
                root + "/policy",
                "--services-root", root + "/services",
            ], environment: ["PATH=/usr/bin:/bin", ParentWatch.askingChildren],
            descriptors: [(out.writeEnd, 1), (.standardError, 2)])
        out.writeEnd.close()
        defer {
            host.send(signal: SIGTERM)
            _ = try? host.wait()
            out.readEnd.close()
        }
        var text = ""
        while !text.contains("ready") {
            guard try Readiness.wait(out.readEnd, timeoutMilliseconds: 60_000).first else {
                throw VchanScenario.Failure("no ready")
            }
            let bytes = try out.readEnd.read(upTo: 1_024)
            if bytes.isEmpty { throw VchanScenario.Failure("sluice-host exited") }
            text += String(decoding: bytes, as: UTF8.self)
        }
        let callPath = BuiltProducts.path(of: "sluice-call")
        let agent = root + "/run/work/agent.sock"
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(devNull) }
        let null = FileDescriptor(rawValue: devNull)

        // A call with a new sluice-call process, next to posix_spawn of /bin/true.
        var processCalls: [Double] = []
        var spawnFloor: [Double] = []
        for round in 0..<300 {
            var start = Harness.now()
            let child = try ChildProcess.spawn(
                path: callPath, arguments: [callPath, "--agent", agent, "vault", "bench.True"], environment: [],
                descriptors: [(null, 0), (null, 1), (null, 2)])
            let ended = try child.wait()
            precondition(ended == .exited(0), "the call failed")
            if round >= 50 { processCalls.append(Double(Harness.now() - start) / 1e6) }
            start = Harness.now()
            _ = try ChildProcess.spawn(path: "/bin/true", arguments: ["true"], environment: [], descriptors: []).wait()
            if round >= 50 { spawnFloor.append(Double(Harness.now() - start) / 1e6) }
        }

        // The same call from this process through the library, and a socket service.
        let endpoints = CallerSide.Endpoints(agentSocket: agent, rendezvousPath: root + "/run/work/vchan.sock")
        let vault = try TargetName("vault")
        let trueCall = try ServiceCall(parsing: "bench.True")
        let socketCall = try ServiceCall(parsing: "bench.Socket")
        var libraryCalls: [Double] = []
        var socketCalls: [Double] = []
        for round in 0..<1_000 {
            var start = Harness.now()
            precondition(
                CallerSide.run(
                    trueCall, target: vault, endpoints: endpoints, input: nil, output: null, errorOutput: null) == 0)
            if round >= 100 { libraryCalls.append(Double(Harness.now() - start) / 1e6) }
            start = Harness.now()
            let input = try SluiceSystem.Pipe()
            try input.writeEnd.writeAll([1])
            input.writeEnd.close()
            precondition(
                CallerSide.run(
                    socketCall, target: vault, endpoints: endpoints, input: input.readEnd, output: null,
                    errorOutput: null) == 0)
            input.readEnd.close()
            if round >= 100 { socketCalls.append(Double(Harness.now() - start) / 1e3) }
        }

        // 1 GiB through cat: in (from a pipe fed by a thread) and out (to a pipe drained by a thread).
        let total = 1 << 30
        let feed = try SluiceSystem.Pipe()
        let drain = try SluiceSystem.Pipe()
        let writer = feed.writeEnd
        let reader = drain.readEnd
        let counted = SharedCounter()
        let drained = SharedFlag()
        Thread {
            let chunk = [UInt8](repeating: 0x5A, count: 256 * 1_024)
            for _ in 0..<(total / chunk.count) { try? writer.writeAll(chunk) }
            writer.close()
        }.start()
        Thread {
            var buffer = [UInt8](repeating: 0, count: 256 * 1_024)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(reader.rawValue, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                counted.add(n)
            }
            drained.set()
        }.start()
        let catCall = try ServiceCall(parsing: "bench.Cat")
        var start = Harness.now()
        precondition(
            CallerSide.run(
                catCall, target: vault, endpoints: endpoints, input: feed.readEnd, output: drain.writeEnd,
                errorOutput: null) == 0)
        drain.writeEnd.close()
        while !drained.isSet() { usleep(1_000) }
        let catRate = Double(total) / (Double(Harness.now() - start) / 1e9) / 1e9
        feed.readEnd.close()
        reader.close()
        precondition(counted.value == total, "cat returned \(counted.value) bytes")

        // 1 000 calls in flight from 50 domains (20 each, under the per-domain limit of 64).
        let failures = SharedCounter()
        let latencies = SharedList<Double>()
        let group = DispatchGroup()
        start = Harness.now()
        for index in 0..<1_000 {
            group.enter()
            let domain = domains[index % domains.count]
            Thread {
                defer { group.leave() }
                let begin = Harness.now()
                let endpoints = CallerSide.Endpoints(
                    agentSocket: root + "/run/\(domain)/agent.sock", rendezvousPath: root + "/run/\(domain)/vchan.sock")
                let status = CallerSide.run(
                    trueCall, target: vault, endpoints: endpoints, input: nil, output: null, errorOutput: null)
                latencies.add(Double(Harness.now() - begin) / 1e6)
                if status != 0 { failures.add(1) }
            }.start()
        }
        group.wait()
        let elapsed = Double(Harness.now() - start) / 1e9
        let sorted = latencies.all.sorted()
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        return [
            Row(
                name: "VM->VM call, new sluice-call process, /bin/true handler (ms, median)",
                value: format(median(processCalls), decimals: 2), baseline: format(median(spawnFloor), decimals: 2),
                baselineName: "posix_spawn of /bin/true (the floor, x2 per call)", verdict: "goal <= 2.5"),
            Row(
                name: "the same call through SluiceClient in a long-lived process (ms, median)",
                value: format(median(libraryCalls), decimals: 2), baseline: format(median(spawnFloor), decimals: 2),
                baselineName: "posix_spawn of /bin/true", verdict: "goal <= 1.2"),
            Row(
                name: "a call to a socket service through SluiceClient (us, median)",
                value: format(median(socketCalls), decimals: 0), baseline: "-", baselineName: "-",
                verdict: "goal <= 150"),
            Row(
                name: "1 GiB through a cat handler, in and out at once (GB/s each way)",
                value: format(catRate, decimals: 2), baseline: "-", baselineName: "-", verdict: "goal >= 1.5"),
            Row(
                name: "1 000 calls in flight across 50 domains: failures, p50 / p99 ms",
                value:
                    "\(failures.value), \(format(sorted[sorted.count / 2], decimals: 1)) / \(format(sorted[sorted.count * 99 / 100], decimals: 1))",
                baseline: format(elapsed, decimals: 2) + " s", baselineName: "wall time for all 1 000",
                verdict: "goal 0 failures"),
        ]
    }
}
