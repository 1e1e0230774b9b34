import Foundation
import SluiceSystem
import SluiceTesting
import Testing

/// Sends `signal` to the processes whose command line contains `pattern`.
func signalProcesses(matching pattern: String, _ signal: Int32) throws {
    let child = try ChildProcess.spawn(
        path: "/usr/bin/pkill", arguments: ["pkill", "-\(signal)", "-f", "--", pattern], environment: [],
        descriptors: [])
    _ = try child.wait()
}

@Suite("Failures: dead agents, a restarted daemon", .serialized)
struct FailureTests {
    @Test("when the target's agent dies mid-call, the caller exits 125 within a second")
    func agentDies() throws {
        let host = try HostFixture()
        let started = DispatchSemaphore(value: 0)
        let outcome = SharedList<String>()
        let caller = Thread {
            started.signal()
            let start = monotonicMilliseconds()
            let result = try? host.call(from: "work", "vault", "test.Sleep")
            outcome.add("\(result?.status ?? -1) \(monotonicMilliseconds() - start)")
        }
        caller.start()
        started.wait()
        #expect(try host.waitForProcess("sleep 30"), "the handler never started")
        let killedAt = monotonicMilliseconds()
        try signalProcesses(matching: "--socket \(host.run)/vault/agent.sock", SIGKILL)
        while outcome.all.isEmpty && monotonicMilliseconds() - killedAt < 5_000 { usleep(10_000) }
        let parts = try #require(outcome.all.first).split(separator: " ")
        #expect(parts[0] == "125")
        #expect(monotonicMilliseconds() - killedAt < 1_500)
        try signalProcesses(matching: "sleep 30", SIGKILL)
    }

    @Test("a target agent that dies mid-call gives its calls back: the caller's slots, and an ended line each")
    func deadTargetReleasesCalls() throws {
        // Two slots: a call the daemon forgot to release would leave the caller unable to call anyone after two.
        let host = try HostFixture(maxCallsPerDomain: 2)
        for round in 0..<2 {
            let outcome = SharedList<Int32>()
            let finished = DispatchSemaphore(value: 0)
            Thread {
                outcome.add((try? host.call(from: "work", "vault", "test.Sleep").status) ?? -1)
                finished.signal()
            }.start()
            #expect(try host.waitForProcess("sleep 30"), "round \(round): the handler never started")
            let agent = try #require(try host.agentPID("vault"))
            kill(agent, SIGKILL)
            try signalProcesses(matching: "sleep 30", SIGKILL)
            #expect(finished.wait(timeout: .now() + 15) == .success, "round \(round): the caller hangs")
            #expect(outcome.all == [125], "round \(round)")
        }
        // The vault's agent comes back (sluice-host restarts it); then work calls again, within its two slots.
        #expect(host.callsAgain(from: "work"), "work cannot call after its targets died under two calls")
        // Each call that was decided has ended on record, with the 125 its caller got.
        let sleeps = try host.audit().filter { $0["service"] as? String == "test.Sleep" }
        #expect(sleeps.filter { $0["event"] as? String == "decided" }.count == 2, "\(sleeps)")
        let ended = sleeps.filter { $0["event"] as? String == "ended" }
        #expect(ended.count == 2, "\(sleeps)")
        #expect(ended.allSatisfy { $0["exit_code"] as? Int == 125 }, "\(ended)")
    }

    @Test("after the daemon is killed and restarted, agents reconnect and new calls succeed")
    func daemonRestarts() throws {
        let host = try HostFixture()
        #expect(try host.call(from: "work", "vault", "test.Echo", input: [1]).status == 0)
        try signalProcesses(matching: "sluiced --rendezvous \(host.run)/", SIGKILL)
        var status: Int32 = -1
        let deadline = monotonicMilliseconds() + 10_000
        while status != 0 && monotonicMilliseconds() < deadline {
            usleep(100_000)
            status = try host.call(from: "work", "vault", "test.Echo", input: [2]).status
        }
        #expect(status == 0)
        #expect(try host.call(from: "untrusted", "vault", "test.Echo", input: [3]).status == 0)
    }
}

@Suite("Cancellation from the caller", .serialized)
struct CancellationTests {
    @Test("Ctrl-C in sluice-call stops the remote handler, and its status still comes back")
    func interrupt() throws {
        let host = try HostFixture()
        let path = BuiltProducts.path(of: "sluice-call")
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(devNull) }
        let null = FileDescriptor(rawValue: devNull)
        let child = try ChildProcess.spawn(
            path: path, arguments: [path, "--agent", host.run + "/work/agent.sock", "vault", "test.Sleep"],
            environment: [],
            descriptors: [(null, 0), (null, 1), (null, 2)])
        // Interrupt once the handler runs: before that, the right answer is 125, not the handler's status.
        #expect(try host.waitForProcess("sleep 30"), "the handler never started")
        let start = monotonicMilliseconds()
        child.send(signal: SIGINT)
        let status = try child.wait()
        #expect(status == .exited(143), "the handler's SIGTERM status")
        #expect(monotonicMilliseconds() - start < 3_000)
    }
}

@Suite("Limits on calls in flight", .serialized)
struct CallLimitTests {
    @Test("a domain over its limit of calls in flight is refused, while another domain keeps calling")
    func perDomainLimit() throws {
        let host = try HostFixture(maxCallsPerDomain: 2)
        let path = BuiltProducts.path(of: "sluice-call")
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(devNull) }
        let null = FileDescriptor(rawValue: devNull)
        let sleepers = try (0..<2).map { _ in
            try ChildProcess.spawn(
                path: path, arguments: [path, "--agent", host.run + "/work/agent.sock", "vault", "test.Sleep"],
                environment: [],
                descriptors: [(null, 0), (null, 1), (null, 2)])
        }
        // Both hold their slots once decided.
        #expect(try host.waitForRecords(2, HostFixture.event("decided", of: "test.Sleep")))
        let refused = try host.call(from: "work", "vault", "test.Echo", input: [1])
        #expect(refused.status == 125)
        #expect(refused.stderr.contains("too many calls"), "\(refused.stderr)")
        #expect(try host.call(from: "personal", "vault", "test.Echo", input: [2]).status == 0)
        for sleeper in sleepers {
            sleeper.send(signal: SIGINT)
            _ = try sleeper.wait()
        }
    }
}

@Suite("Limits: calls in all, pending asks", .serialized)
struct LimitTests {
    func background(_ host: HostFixture, from domain: String, _ target: String, _ service: String) throws
        -> ChildProcess
    {
        let path = BuiltProducts.path(of: "sluice-call")
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(devNull) }
        let null = FileDescriptor(rawValue: devNull)
        return try ChildProcess.spawn(
            path: path, arguments: [path, "--agent", host.run + "/\(domain)/agent.sock", target, service],
            environment: [], descriptors: [(null, 0), (null, 1), (null, 2)])
    }

    @Test("over the limit of calls in flight in all, every domain is refused until calls end")
    func totalLimit() throws {
        let host = try HostFixture(options: ["--max-calls", "2"])
        let sleepers = try (0..<2).map { _ in try background(host, from: "work", "vault", "test.Sleep") }
        #expect(try host.waitForRecords(2, HostFixture.event("decided", of: "test.Sleep")))
        let refused = try host.call(from: "personal", "vault", "test.Echo", input: [1])
        #expect(refused.status == 125)
        #expect(refused.stderr.contains("too many calls"), "\(refused.stderr)")
        for sleeper in sleepers {
            sleeper.send(signal: SIGINT)
            _ = try sleeper.wait()
        }
        // Their slots are free once the daemon has their ends.
        #expect(try host.waitForRecords(2, HostFixture.event("ended", of: "test.Sleep")))
        #expect(try host.call(from: "personal", "vault", "test.Echo", input: [2]).status == 0)
    }

    @Test("a domain with a question already waiting for the user is refused another, other domains still ask")
    func pendingAsks() throws {
        let host = try HostFixture(
            askAnswer: "allow:vault", options: ["--max-pending-asks-per-domain", "1"], askDelaySeconds: 1.5)
        let waiting = try background(host, from: "work", "vault", "test.Ask")
        // The question is on the screen once the ask command has read it.
        let deadline = monotonicMilliseconds() + 15_000
        while !FileManager.default.fileExists(atPath: host.root + "/ask-question.json")
            && monotonicMilliseconds() < deadline
        {
            usleep(10_000)
        }
        let refused = try host.call(from: "work", "vault", "test.Ask")
        #expect(refused.status == 125)
        #expect(refused.stderr.contains("too many questions"), "\(refused.stderr)")
        #expect(try host.call(from: "personal", "vault", "test.Ask").status == 0)
        #expect(try waiting.wait().shellStatus == 0)
        let reasons = try host.audit().compactMap { $0["reason"] as? String }
        #expect(reasons == ["too-many-asks"], "\(reasons)")
    }
}

@Suite("A hostile domain", .serialized)
struct HostileDomainTests {
    @Test("a domain that sends frames the daemon refuses loses its channel, and the other domains keep calling")
    func garbageOnControlChannel() throws {
        let host = try HostFixture()
        // "rogue" is halted: no agent holds its control channel, so the probe takes it and sends a hello, then data
        // frames (a service->caller message, wrong on a control channel), then a duplicate-key frame.
        let probePath = BuiltProducts.path(of: "sluice-vchan-probe")
        let rogue = try ChildProcess.spawn(
            path: probePath,
            arguments: [
                probePath, "client", "--server", "0", "--port", "512", "--scenario", "frames", "--rendezvous",
                host.run + "/rogue/vchan.sock",
            ], environment: [], descriptors: [])
        let (failures, group) = Self.legitimateCalls(host, count: 20)
        group.wait()
        #expect(failures.all.isEmpty, "\(failures.all)")
        // The daemon logs "closing on a bad frame: wrong-direction" and drops the channel; it keeps serving.
        rogue.send(signal: SIGKILL)
        _ = try? rogue.wait()
        #expect(try host.call(from: "work", "vault", "test.Echo", input: [42]).stdout == [42])
    }

    /// Starts `count` echo calls from work and personal to vault, in the background; each one that fails or comes back
    /// changed is recorded. Wait on the group before reading the failures.
    static func legitimateCalls(_ host: HostFixture, count: Int) -> (SharedList<String>, DispatchGroup) {
        let failures = SharedList<String>()
        let group = HostFixture.concurrently(count) { index in
            let caller = index % 2 == 0 ? "work" : "personal"
            let result = try? host.call(from: caller, "vault", "test.Echo", input: [UInt8(index)])
            if result?.status != 0 || result?.stdout != [UInt8(index)] { failures.add("\(caller) #\(index)") }
        }
        return (failures, group)
    }

    /// Runs `sluice-vchan-probe hostile` as domain "rogue" (halted, so its control channel is free) and returns
    /// its one line.
    static func attack(_ host: HostFixture, _ attack: String) throws -> String {
        let (probe, output) = try Self.rogue(host, ["hostile", "--attack", attack])
        let line = String(decoding: try output.readToEnd(), as: UTF8.self)
        output.close()
        _ = try probe.wait()
        return line
    }

    /// Starts `sluice-vchan-probe MODE ...` as domain "rogue" on its control channel; returns it and its stdout.
    static func rogue(_ host: HostFixture, _ arguments: [String]) throws -> (ChildProcess, FileDescriptor) {
        let probePath = BuiltProducts.path(of: "sluice-vchan-probe")
        let output = try SluiceSystem.Pipe()
        let probe = try ChildProcess.spawn(
            path: probePath,
            arguments: [probePath] + arguments + [
                "--server", "0", "--port", "512", "--rendezvous", host.run + "/rogue/vchan.sock",
            ], environment: [], descriptors: [(output.writeEnd, 1), (.standardError, 2)])
        output.writeEnd.close()
        return (probe, output.readEnd)
    }

    @Test("a domain cut off again and again gets its channel back later each time, and the log says when")
    func reofferBackoff() throws {
        let host = try HostFixture(captureLog: true)
        let started = monotonicMilliseconds()
        for _ in 0..<5 {
            let line = try Self.attack(host, "garbage")
            #expect(line.hasPrefix("ok cut-off"), "\(line)")
        }
        // Between the attacks the channel was away for 20, 40, 80 and 160 ms at least.
        #expect(monotonicMilliseconds() - started >= 300)
        func delays() -> [Int] {
            host.log().split(separator: "\n").filter { $0.contains("domain=rogue") }.compactMap { line in
                line.split(separator: " ").first { $0.hasPrefix("offered-again-in-ms=") }
                    .flatMap { Int($0.dropFirst("offered-again-in-ms=".count)) }
            }
        }
        let deadline = monotonicMilliseconds() + 5_000
        while delays().count < 5 && monotonicMilliseconds() < deadline { usleep(50_000) }
        #expect(delays() == [20, 40, 80, 160, 320], "\(host.log())")
        // Other domains never waited for any of it.
        #expect(try host.call(from: "work", "vault", "test.Echo", input: [7]).stdout == [7])
    }

    @Test("a target that stops reading its control channel is cut off at the send deadline; its callers end with 125")
    func deafTarget() throws {
        let host = try HostFixture(
            policy: "test.Echo * @anyvm rogue allow\n" + HostFixture.policy,
            options: ["--control-send-timeout-ms", "500"], captureLog: true)
        let (probe, output) = try Self.rogue(host, ["deaf", "--hold-ms", "4000"])
        defer { output.close() }
        // Wait for "ok deaf connected" before calling, so the daemon does not start an agent for rogue.
        var seen: [UInt8] = []
        while !seen.contains(UInt8(ascii: "\n")) {
            let bytes = try output.read(upTo: 256)
            if bytes.isEmpty { break }
            seen += bytes
        }
        // The daemon opens the domain's session before it answers hello, so a call now finds the rogue's agent
        // connected (and does not start one for it).
        #expect(String(decoding: seen, as: UTF8.self).hasPrefix("ok deaf connected"))
        // Orders of about 60 KiB each: two fill the 128 KiB ring the deaf agent never reads, the third waits.
        let argument = String(repeating: "a", count: 60_000)
        let outcomes = SharedList<String>()
        let group = HostFixture.concurrently(3) { _ in
            let start = monotonicMilliseconds()
            let result = try? host.call(from: "work", "rogue", "test.Echo+" + argument)
            outcomes.add("\(result?.status ?? -1) \(monotonicMilliseconds() - start)")
        }
        let (failures, others) = Self.legitimateCalls(host, count: 10)
        others.wait()
        #expect(failures.all.isEmpty, "\(failures.all)")
        group.wait()
        let results = outcomes.all.map { $0.split(separator: " ").compactMap { Int($0) } }
        // Each ends with 125 soon after the cut-off: the daemon tells the callers' agent, so they do not wait out
        // their 10 s connect timeout for a target that will never connect.
        #expect(results.allSatisfy { $0.count == 2 && $0[0] == 125 && $0[1] < 5_000 }, "\(results)")
        #expect(host.log().contains("rogue has not read its control channel for 500 ms: cutting it off"))
        let ended = try host.audit().filter { $0["target"] as? String == "rogue" && $0["event"] as? String == "ended" }
        #expect(ended.count == 3 && ended.allSatisfy { $0["reason"] as? String == "target-gone" }, "\(ended)")
        let lines = String(decoding: seen + (try output.readToEnd()), as: UTF8.self).split(separator: "\n")
        _ = try probe.wait()
        #expect(lines.last == "ok deaf cut-off", "\(lines)")
    }

    @Test("each hostile frame cuts the domain off or is refused, with its own code, while others keep calling")
    func hostileFrames() throws {
        let host = try HostFixture(options: ["--max-request-bytes", "1000"])
        let expected: [(String, String)] = [
            ("garbage", "cut-off"), ("oversized", "cut-off"), ("truncated", "cut-off"), ("duplicate-key", "cut-off"),
            ("deep", "cut-off"), ("non-utf8", "cut-off"), ("wrong-direction", "cut-off"),
            ("spoofed-source", "cut-off"), ("forbidden-bytes", "cut-off"),
            ("requested-source", "refused refused-by-policy"), ("long-request", "refused request-too-large"),
        ]
        for (attack, outcome) in expected {
            let (failures, group) = Self.legitimateCalls(host, count: 6)
            let line = try Self.attack(host, attack)
            group.wait()
            #expect(line.hasPrefix("ok \(outcome)"), "\(attack): \(line)")
            #expect(failures.all.isEmpty, "\(attack): \(failures.all)")
        }
        // The refusals are audited under the channel's domain, whatever the frame claimed.
        let records = try host.audit().filter { $0["source"] as? String == "rogue" }
        #expect(records.count == 2, "\(records)")
        #expect(records.contains { $0["reason"] as? String == "request-too-large" })
        #expect(try host.audit().allSatisfy { $0["source"] as? String != "vault" })
    }
}
