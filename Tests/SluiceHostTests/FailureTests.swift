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
        let outcome = Failures()
        let caller = Thread {
            started.signal()
            let start = monotonicMilliseconds()
            let result = try? host.call(from: "work", "vault", "test.Sleep")
            outcome.add("\(result?.status ?? -1) \(monotonicMilliseconds() - start)")
        }
        caller.start()
        started.wait()
        usleep(500_000)
        let killedAt = monotonicMilliseconds()
        try signalProcesses(matching: "--socket \(host.run)/vault/agent.sock", SIGKILL)
        while outcome.all.isEmpty && monotonicMilliseconds() - killedAt < 5_000 { usleep(10_000) }
        let parts = try #require(outcome.all.first).split(separator: " ")
        #expect(parts[0] == "125")
        #expect(monotonicMilliseconds() - killedAt < 1_500)
        try signalProcesses(matching: "sleep 30", SIGKILL)
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
        usleep(700_000)
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
        usleep(800_000)
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
        let failures = Failures()
        let group = DispatchGroup()
        for index in 0..<20 {
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                let caller = index % 2 == 0 ? "work" : "personal"
                let result = try? host.call(from: caller, "vault", "test.Echo", input: [UInt8(index)])
                if result?.status != 0 || result?.stdout != [UInt8(index)] { failures.add("\(caller) #\(index)") }
            }
        }
        group.wait()
        #expect(failures.all.isEmpty, "\(failures.all)")
        // The daemon logs "closing on a bad frame: wrong-direction" and drops the channel; it keeps serving.
        rogue.send(signal: SIGKILL)
        _ = try? rogue.wait()
        #expect(try host.call(from: "work", "vault", "test.Echo", input: [42]).stdout == [42])
    }
}
