import Foundation
import SluiceClient
import SluiceSystem
import SluiceTesting
import SluiceWire

/// A legitimate caller's latency while another domain attacks (issue: p99 at most 2x the unloaded p99). The
/// legitimate caller is `work`, calling vault's `/bin/true` through SluiceClient's caller side, one call at a time;
/// the attacker is `rogue` (a hostile agent) or `untrusted` (a slow reader). Baseline: the same caller, unloaded, for
/// the same number of calls just before each attack.
enum HostileBenchmarks {
    static let policy = """
        bench.True  * @anyvm vault allow
        bench.Zero  * @anyvm vault allow
        test.Echo   * @anyvm vault allow
        """

    static func run() throws -> [Row] {
        let host = try BenchHost(
            domains: ["work", "untrusted"], policy: policy,
            services: [
                "bench.True": "/bin/true", "bench.Zero": "#!/bin/sh\nexec cat /dev/zero\n", "test.Echo": "/bin/cat",
            ])
        defer { host.stop() }
        let call = try ServiceCall(parsing: "bench.True")
        let vault = try TargetName("vault")
        let null = FileDescriptor(rawValue: open("/dev/null", O_RDWR | O_CLOEXEC))
        defer { null.close() }
        // The callers' complaints, if any, go to a file printed with the failure.
        let errors = FileDescriptor(
            rawValue: open(host.root + "/caller-errors", O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o600))
        defer { errors.close() }
        var failed = 0
        func legitimate(_ count: Int) -> [Double] {
            (0..<count).map { _ in
                let start = Harness.now()
                let status = CallerSide.run(
                    call, target: vault, endpoints: host.endpoints("work"), input: nil, output: null,
                    errorOutput: errors)
                if status != 0 { failed += 1 }
                return Double(Harness.now() - start) / 1e6
            }
        }
        _ = legitimate(100)  // warm-up

        var rows: [Row] = []
        func measure(_ name: String, _ attack: () throws -> () -> Void) throws {
            // Each attack's baseline is the same 1 000 calls just before it, unloaded: one baseline for the whole
            // run (the 10th slowest of 1 000 calls) swung from 3.0 to 6.6 ms between runs on this VM while the
            // attacked p99s stayed within a few ms, so the ratios mostly measured when the baseline was taken.
            // The previous attack's tail ends first: calls it got admitted (the storm's too, from the requests still
            // in its ring) are held by the target until its 10 s connect timeout. Measured: a baseline taken 0.3 s
            // after the storm had a p99 of 9.6-11.2 ms.
            if !rows.isEmpty { usleep(11_000_000) }
            let unloaded = percentiles(legitimate(1_000))
            let stop = try attack()
            usleep(300_000)  // let the attack get going
            failed = 0
            let loaded = percentiles(legitimate(1_000))
            stop()
            if failed > 0 {
                let complaints = (try? String(contentsOfFile: host.root + "/caller-errors", encoding: .utf8)) ?? ""
                print("during \(name): \(failed) legitimate calls failed: \(Set(complaints.split(separator: "\n")))")
                let log = (try? String(contentsOfFile: host.root + "/host.log", encoding: .utf8)) ?? ""
                let notable = log.split(separator: "\n").filter {
                    !$0.contains("cannot reach the caller's data channel") && !$0.contains("over its rate limit")
                        && !$0.contains("too many calls in flight")
                }
                print(notable.suffix(15).joined(separator: "\n"))
            }
            let ratio = loaded.p99 / unloaded.p99
            rows.append(
                Row(
                    name: "legitimate call p50 / p99 (ms) during \(name)\(failed > 0 ? " (\(failed) FAILED)" : "")",
                    value: "\(format(loaded.p50, decimals: 2)) / \(format(loaded.p99, decimals: 2))",
                    baseline: "\(format(unloaded.p50, decimals: 2)) / \(format(unloaded.p99, decimals: 2))",
                    baselineName: "the same calls, unloaded",
                    verdict: "p99 x\(format(ratio, decimals: 2)) (goal <= 2: \(ratio <= 2 ? "met" : "NOT met"))"))
        }
        func killing(_ process: ChildProcess) -> () -> Void {
            {
                process.send(signal: SIGKILL)
                _ = try? process.wait()
            }
        }
        try measure("a storm of 10 000 requests/s") {
            killing(try host.probe(["flood", "--count", "100000000", "--rate", "10000", "--linger-ms", "0"]))
        }
        try measure("a slow reader (a data channel never read)") {
            try host.slowReader(from: "untrusted", errors: null)
        }
        try measure("malformed frames, reconnecting (garbage, 2^32-1, duplicate keys)") {
            let running = SharedFlag()
            let made = SharedCounter()
            let attacks = ["garbage", "oversized", "duplicate-key", "deep", "non-utf8", "wrong-direction"]
            let started = Harness.now()
            let thread = Thread {
                var index = 0
                while !running.isSet() {
                    if let probe = try? host.probe(["hostile", "--attack", attacks[index % attacks.count]]) {
                        _ = try? probe.wait()
                        made.add(1)
                    }
                    index += 1
                }
            }
            thread.start()
            return {
                running.set()
                // The daemon offers a violator's channel back later each time (20 ms doubling to 1 s), so this is
                // the attack rate the defence allows, not the rate the attacker wanted.
                let seconds = Double(Harness.now() - started) / 1e9
                print("malformed frames: \(made.value) attacks in \(format(seconds, decimals: 1)) s")
            }
        }
        try measure("a descriptor flood of the broker (400 connections, 5 000 offers)") {
            let probe = try host.probe([
                "fd-flood", "--connections", "400", "--registrations", "5000", "--hold-ms", "600000",
            ])
            return killing(probe)
        }
        // Last: its calls stay held at the target for 10 s after the attacker is gone, which would load the next
        // attack's baseline.
        try measure("1 000 half-open calls (64 held)") {
            killing(try host.probe(["flood", "--count", "1000", "--rate", "0", "--linger-ms", "600000"]))
        }
        return rows
    }
}
