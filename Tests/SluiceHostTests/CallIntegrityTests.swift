import Foundation
import SluiceSystem
import SluiceTesting
import SluiceWire
import Testing

/// A rogue agent that speaks the protocol correctly, about calls that are not its own: each attack fails safely, and
/// the other domains' calls go on (docs/threat-model.md, "Call integrity").
@Suite("A rogue agent cannot move another domain's call", .serialized)
struct CallIntegrityTests {
    static let policy =
        """
        test.Slow   *  @anyvm  vault     allow
        test.Slow   *  work    @dispvm:work-dvm   allow
        test.Echo   *  @anyvm  rogue     allow
        """ + "\n" + HostFixture.policy

    static func host(_ options: [String] = [], maxCallsPerDomain: Int? = nil) throws -> HostFixture {
        let host = try HostFixture(
            policy: policy, maxCallsPerDomain: maxCallsPerDomain, options: options, captureLog: true)
        try host.service("vault", "test.Slow", "sleep 2; echo finished")
        try host.service("work-dvm", "test.Slow", "sleep 2; echo finished in $(hostname -s 2>/dev/null || echo dvm)")
        return host
    }

    /// The first audit line that `matches`, waiting up to 15 s for it to be written.
    static func awaitRecord(_ host: HostFixture, _ matches: ([String: Any]) -> Bool) throws -> [String: Any]? {
        let deadline = monotonicMilliseconds() + 15_000
        while monotonicMilliseconds() < deadline {
            if let record = try host.audit().first(where: matches) { return record }
            usleep(20_000)
        }
        return nil
    }

    /// The probe's first line, once it is printed (a rogue target says it holds its channel).
    static func firstLine(_ output: FileDescriptor) throws -> String {
        var seen: [UInt8] = []
        while !seen.contains(UInt8(ascii: "\n")) {
            let bytes = try output.read(upTo: 1)
            if bytes.isEmpty { break }
            seen += bytes
        }
        return String(decoding: seen, as: UTF8.self).trimmingCharacters(in: .newlines)
    }

    static func run(_ host: HostFixture, _ arguments: [String]) throws -> String {
        let (probe, output) = try HostileDomainTests.rogue(host, arguments)
        let text = String(decoding: try output.readToEnd(), as: UTF8.self)
        output.close()
        _ = try probe.wait()
        return text.trimmingCharacters(in: .newlines)
    }

    @Test("a done for another domain's call from a third domain cuts it off; the call ends with its real report")
    func forgedDoneFromThirdDomain() throws {
        let host = try Self.host()
        let result = SharedList<String>()
        let call = HostFixture.concurrently(1) { _ in
            let outcome = try? host.call(from: "work", "vault", "test.Slow")
            result.add("\(outcome?.status ?? -1) \(String(decoding: outcome?.stdout ?? [], as: UTF8.self))")
        }
        let decided = try #require(
            try Self.awaitRecord(host) {
                $0["service"] as? String == "test.Slow" && $0["event"] as? String == "decided"
            })
        let id = try #require(decided["call"] as? Int)
        // The rogue is given the id, as if it had guessed the 53-bit random number.
        let (failures, others) = HostileDomainTests.legitimateCalls(host, count: 6)
        let line = try Self.run(host, ["forge-done", "--call", String(id)])
        others.wait()
        call.wait()
        #expect(line == "ok forge-done cut-off not-a-party", "\(line)")
        #expect(failures.all.isEmpty, "\(failures.all)")
        #expect(result.all == ["0 finished\n"], "\(result.all)")
        // The caller may be done a moment before the target's report reaches the daemon.
        _ = try Self.awaitRecord(host) { $0["call"] as? Int == id && $0["event"] as? String == "ended" }
        let ended = try host.audit().filter { $0["call"] as? Int == id && $0["event"] as? String == "ended" }
        #expect(ended.count == 1, "\(ended)")
        #expect(ended.first?["exit_code"] as? Int == 0 && (ended.first?["bytes_out"] as? Int ?? 0) > 0, "\(ended)")
        #expect(host.log().contains("cutting off rogue: not-a-party"), "\(host.log())")
    }

    @Test("a domain that reports the end of its own half-open calls is cut off, and its limit still holds")
    func ownDoneDoesNotLiftTheLimit() throws {
        let host = try Self.host(maxCallsPerDomain: 3)
        let line = try Self.run(host, ["own-done", "--count", "10"])
        // Before the call table: every done freed a slot, and the second round was admitted 3 more (400 of 400 in
        // the attack that found it).
        #expect(line == "ok own-done first 3 cut-off not-a-party second 0", "\(line)\n\(host.log())")
        let (failures, others) = HostileDomainTests.legitimateCalls(host, count: 6)
        others.wait()
        #expect(failures.all.isEmpty, "\(failures.all)")
    }

    @Test("a forged done cannot destroy another domain's disposable in the middle of its call")
    func forgedDoneForDisposable() throws {
        let host = try Self.host()
        let result = SharedList<String>()
        let call = HostFixture.concurrently(1) { _ in
            let outcome = try? host.call(from: "work", "@dispvm:work-dvm", "test.Slow")
            result.add("\(outcome?.status ?? -1) \(String(decoding: outcome?.stdout ?? [], as: UTF8.self))")
        }
        let decided = try #require(
            try Self.awaitRecord(host) {
                $0["service"] as? String == "test.Slow" && $0["event"] as? String == "decided"
                    && ($0["target"] as? String)?.hasPrefix("disp") == true
            })
        let id = try #require(decided["call"] as? Int)
        let disposable = try #require(decided["target"] as? String)
        let line = try Self.run(host, ["forge-done", "--call", String(id)])
        #expect(line == "ok forge-done cut-off not-a-party", "\(line)")
        #expect(FileManager.default.fileExists(atPath: host.run + "/" + disposable), "destroyed during its call")
        call.wait()
        #expect(result.all.first?.hasPrefix("0 finished in") == true, "\(result.all)")
        _ = try Self.awaitRecord(host) { $0["call"] as? Int == id && $0["event"] as? String == "ended" }
        let ended = try host.audit().filter { $0["call"] as? Int == id && $0["event"] as? String == "ended" }
        #expect(ended.count == 1 && ended.first?["exit_code"] as? Int == 0, "\(ended)")
        // Destroyed after its own call ended.
        let deadline = monotonicMilliseconds() + 10_000
        while FileManager.default.fileExists(atPath: host.run + "/" + disposable) && monotonicMilliseconds() < deadline
        {
            usleep(20_000)
        }
        #expect(!FileManager.default.fileExists(atPath: host.run + "/" + disposable))
    }

    @Test("a target that sends stdout before hello fails the call with 125, and the bytes never reach the caller")
    func dataBeforeHello() throws {
        let host = try Self.host()
        let (probe, output) = try HostileDomainTests.rogue(host, ["early-data"])
        defer { output.close() }
        #expect(try Self.firstLine(output) == "ok target connected")
        let result = try host.call(from: "work", "rogue", "test.Echo")
        #expect(result.status == 125)
        #expect(!String(decoding: result.stdout, as: UTF8.self).contains("before hello"))
        #expect(result.stderr.contains("before hello"), "\(result.stderr)")
        probe.send(signal: SIGKILL)
        _ = try? probe.wait()
        #expect(try host.call(from: "work", "vault", "test.Echo", input: [9]).stdout == [9])
    }

    @Test("a ping on a control channel is answered with its pong, and the channel stays open")
    func ping() throws {
        let host = try Self.host()
        #expect(try Self.run(host, ["ping"]) == "ok ping pongs 41,42 open")
    }

    @Test("a cancel right behind its call is not dropped: the target is told, and no handler starts")
    func cancelBehindItsCall() throws {
        let host = try Self.host(["--done-deadline-ms", "60000"])
        let line = try Self.run(host, ["call-cancel"])
        // Decided at once, so brokered; the cancel that follows closes it. (Before, the daemon dropped the cancel
        // and the target tried to reach the caller for its 10 s connect timeout.)
        #expect(line.hasPrefix("ok call-cancel connect"), "\(line)")
        let ended = try #require(
            try Self.awaitRecord(host) { $0["source"] as? String == "rogue" && $0["event"] as? String == "ended" })
        // Reported by the target (no reason: not the daemon's deadline), which never started the handler.
        #expect(ended["exit_code"] as? Int == 125 && ended["reason"] == nil, "\(ended)")
        #expect(try host.pid(of: "sleep 30") == nil)
    }

    @Test("a caller's cancel before the decision withdraws the request, through a real agent, in order")
    func cancelBeforeDecision() throws {
        let host = try HostFixture(askAnswer: "allow:vault", askDelaySeconds: 1, captureLog: true)
        let socket = try UnixSocket.connect(to: host.run + "/work/agent.sock", kind: .datagram)
        defer { socket.close() }
        let link = SocketFrameLink(socket: DatagramSocket(descriptor: socket), receiving: .agentToClient)
        let id = RequestID(rawValue: 5)!
        try link.send(.hello(.current))
        try link.send(
            .call(CallRequest(id: id, call: try ServiceCall(parsing: "test.Ask"), target: try TargetName("vault"))))
        try link.send(.cancel(id))
        var answer: Message?
        while let message = try link.receive() {
            if case .hello = message { continue }
            answer = message
            break
        }
        #expect(
            answer == .refused(Refusal(id: id, code: .cancelled, message: "the call was cancelled")),
            "\(String(describing: answer))")
        // The question was still asked and answered "allow" a second later (the script then waits until the daemon,
        // having read the answer, kills it); the call must not run anyway.
        let script = "^/bin/sh " + host.root + "/ask.sh"
        #expect(try host.waitForProcess(script))
        let deadline = monotonicMilliseconds() + 10_000
        while try host.pid(of: script) != nil && monotonicMilliseconds() < deadline { usleep(20_000) }
        #expect(FileManager.default.fileExists(atPath: host.root + "/ask-answering"))
        #expect(try host.call(from: "work", "vault", "test.Echo", input: [1]).status == 0)
        let asked = try host.audit().filter { $0["service"] as? String == "test.Ask" }
        #expect(asked.count == 1 && asked.first?["reason"] as? String == "cancelled", "\(asked)")
    }

    @Test("Ctrl-C while sluice-call waits for the decision ends it at once (130), and the request is withdrawn")
    func interruptedWhileDeciding() throws {
        let host = try HostFixture(askAnswer: "allow:vault", askDelaySeconds: 20, captureLog: true)
        let path = BuiltProducts.path(of: "sluice-call")
        let caller = try ChildProcess.spawn(
            path: path, arguments: [path, "--agent", host.run + "/work/agent.sock", "vault", "test.Ask"],
            environment: [], descriptors: [])
        let deadline = monotonicMilliseconds() + 15_000
        while !FileManager.default.fileExists(atPath: host.root + "/ask-question.json")
            && monotonicMilliseconds() < deadline
        {
            usleep(10_000)
        }
        caller.send(signal: SIGINT)
        // Before, the signal stayed blocked until the decision came: here, 20 s later.
        #expect(try caller.wait().shellStatus == 130)
        let refused = try Self.awaitRecord(host) { $0["service"] as? String == "test.Ask" }
        #expect(refused?["reason"] as? String == "cancelled", "\(String(describing: refused))")
    }

    @Test("a target that never reports a call's end loses it at the deadline, and its caller's slot is free again")
    func silentTarget() throws {
        let host = try Self.host(["--done-deadline-ms", "500"], maxCallsPerDomain: 1)
        let (probe, output) = try HostileDomainTests.rogue(host, ["silent-target", "--count", "1"])
        defer { output.close() }
        #expect(try Self.firstLine(output) == "ok target connected")
        let result = try host.call(from: "work", "rogue", "test.Echo")
        #expect(result.status == 0 && result.stdout == Array("silent\n".utf8))
        let ended = try #require(
            try Self.awaitRecord(host) { $0["target"] as? String == "rogue" && $0["event"] as? String == "ended" })
        #expect(ended["reason"] as? String == "target-silent" && ended["exit_code"] as? Int == 125, "\(ended)")
        // With one slot: before the deadline ended the call, this was refused with too-many-calls for as long as the
        // rogue kept its channel.
        #expect(try host.call(from: "work", "vault", "test.Echo", input: [3]).stdout == [3])
        let rest = String(decoding: try output.readToEnd(), as: UTF8.self)
        _ = try probe.wait()
        #expect(rest.contains("ok target served 1 cancels 1"), "\(rest)")
    }

    @Test("calls over the in-flight limit are refused at once with too-many-calls, not queued")
    func overTheLimitIsRefused() throws {
        let host = try Self.host(maxCallsPerDomain: 3)
        try host.service("vault", "test.Slow", "sleep 5; echo finished")
        let statuses = SharedList<String>()
        HostFixture.concurrently(12) { _ in
            let outcome = try? host.call(from: "work", "vault", "test.Slow")
            statuses.add("\(outcome?.status ?? -1) \(outcome?.stderr ?? "")")
        }.wait()
        let all = statuses.all
        #expect(all.filter { $0.hasPrefix("0 ") }.count == 3, "\(all)")
        #expect(all.filter { $0.hasPrefix("125 ") && $0.contains("too many calls") }.count == 9, "\(all)")
    }
}
