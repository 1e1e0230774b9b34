import Foundation
import SluiceClient
import SluiceSystem
import SluiceTesting
import SluiceWire

/// `sluice-bench soak [CALLS]` (`make soak`): CALLS calls (default 100 000) through a real sluice-host while `rogue`
/// storms at 2 000 requests a second and leaves calls half-open, and `untrusted` holds a data channel it never reads.
/// Prints the descriptors and resident memory of sluiced, sluice-host and the agents at the start, the middle and the
/// end: they must stay flat. Fails (exit 1) on a failed call or on growth.
enum SoakBenchmark {
    static func run(calls total: Int) throws -> [Row] {
        let host = try BenchHost(
            domains: ["work", "personal", "untrusted"], policy: HostileBenchmarks.policy,
            services: [
                "bench.True": "/bin/true", "bench.Zero": "#!/bin/sh\nexec cat /dev/zero\n", "test.Echo": "/bin/cat",
            ])
        defer { host.stop() }
        let null = FileDescriptor(rawValue: open("/dev/null", O_RDWR | O_CLOEXEC))
        defer { null.close() }
        // The callers' complaints, printed with the result if any call fails.
        let errors = FileDescriptor(
            rawValue: open(host.root + "/caller-errors", O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o600))
        defer { errors.close() }
        let watched: [(String, String)] = [
            ("sluiced", "sluiced --rendezvous \(host.run)/"), ("sluice-host", "sluice-host --run-dir \(host.run)"),
            ("vault agent", "--socket \(host.run)/vault/agent.sock"),
            ("work agent", "--socket \(host.run)/work/agent.sock"),
        ]
        func sample(_ label: String) -> [String: (Int, Int)] {
            var result: [String: (Int, Int)] = [:]
            for (name, pattern) in watched {
                if let pid = BenchHost.pid(of: pattern) { result[name] = BenchHost.footprint(pid) }
            }
            let text = watched.map { name, _ in
                let (fds, rss) = result[name] ?? (-1, -1)
                return "\(name) \(fds) fds \(rss / 1_024) MiB"
            }.joined(separator: ", ")
            print("soak \(label): \(text)")
            return result
        }

        // The background attack, kept up for the whole run.
        let storm = try host.probe(["flood", "--count", "1000000000", "--rate", "2000", "--linger-ms", "0"])
        let stopReader = try host.slowReader(from: "untrusted", errors: null)
        defer {
            storm.send(signal: SIGKILL)
            _ = try? storm.wait()
            stopReader()
        }

        // Warm-up, so that the start sample is taken after caches and thread pools have grown to their working size.
        let call = try ServiceCall(parsing: "bench.True")
        let vault = try TargetName("vault")
        for _ in 0..<2_000 {
            _ = CallerSide.run(
                call, target: vault, endpoints: host.endpoints("work"), input: nil, output: null, errorOutput: null)
        }
        let start = sample("start (after 2 000 warm-up calls)")
        let next = SharedCounter()
        let failures = SharedCounter()
        let latencies = SharedList<Double>()
        var middle: [String: (Int, Int)] = [:]
        let began = Harness.now()
        let group = DispatchGroup()
        for worker in 0..<4 {
            group.enter()
            Thread {
                defer { group.leave() }
                let domain = worker % 2 == 0 ? "work" : "personal"
                while true {
                    let index = next.take()
                    guard index < total else { return }
                    let started = Harness.now()
                    let status = CallerSide.run(
                        call, target: vault, endpoints: host.endpoints(domain), input: nil, output: null,
                        errorOutput: errors)
                    if status != 0 { failures.add(1) }
                    if index % 100 == 0 { latencies.add(Double(Harness.now() - started) / 1e6) }
                }
            }.start()
        }
        while next.value < total / 2 { usleep(100_000) }
        middle = sample("middle (\(total / 2) calls)")
        group.wait()
        let seconds = Double(Harness.now() - began) / 1e9
        let end = sample("end (\(total) calls)")
        let (p50, p99) = percentiles(latencies.all)

        // Flat: from the middle to the end, no process gains descriptors, and none grows by more than 10 % (and 8 MiB).
        var growth: [String] = []
        for (name, _) in watched {
            guard let (fdsMiddle, rssMiddle) = middle[name], let (fdsEnd, rssEnd) = end[name] else { continue }
            if fdsEnd > fdsMiddle + 2 { growth.append("\(name) descriptors \(fdsMiddle) -> \(fdsEnd)") }
            if rssEnd > rssMiddle + max(rssMiddle / 10, 8_192) {
                growth.append("\(name) memory \(rssMiddle / 1_024) -> \(rssEnd / 1_024) MiB")
            }
        }
        func cells(_ sample: [String: (Int, Int)], _ name: String) -> String {
            guard let (fds, rss) = sample[name] else { return "-" }
            return "\(fds) fds, \(rss / 1_024) MiB"
        }
        var rows = watched.map { name, _ in
            Row(
                name: "soak: \(name) at start / middle / end",
                value: "\(cells(start, name)) / \(cells(middle, name)) / \(cells(end, name))", baseline: "-",
                baselineName: "-", verdict: "flat")
        }
        rows.append(
            Row(
                name: "soak: \(total) calls under a 2 000/s storm, half-open calls and a slow reader",
                value:
                    "\(failures.value) failed, p50 \(format(p50, decimals: 2)) ms, p99 \(format(p99, decimals: 2)) ms",
                baseline: "\(format(seconds, decimals: 0)) s", baselineName: "wall time",
                verdict: growth.isEmpty && failures.value == 0 ? "flat, no failure" : "NOT flat: \(growth)"))
        if failures.value > 0 {
            let complaints = (try? String(contentsOfFile: host.root + "/caller-errors", encoding: .utf8)) ?? ""
            let counted = Dictionary(grouping: complaints.split(separator: "\n"), by: { $0 }).mapValues(\.count)
            print("soak: failed calls said: \(counted)")
            let log = (try? String(contentsOfFile: host.root + "/host.log", encoding: .utf8)) ?? ""
            let notable = log.split(separator: "\n").filter {
                !$0.contains("cannot reach the caller's data channel") && !$0.contains("over its rate limit")
                    && !$0.contains("too many calls in flight") && !$0.contains("rogue")
            }
            print(notable.suffix(20).joined(separator: "\n"))
        }
        if !growth.isEmpty || failures.value > 0 {
            printTable(rows)
            throw VchanScenario.Failure("the soak failed: \(failures.value) failed calls; growth: \(growth)")
        }
        return rows
    }
}
