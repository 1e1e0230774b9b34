import Foundation
import SluiceSystem
import SluiceTesting
import Testing

/// A hostile domain that floods: a storm of requests, calls it leaves half-open, a data channel it never reads. In
/// each, other domains keep calling, the daemon and their agents stay up, and the flood gets a clear error with a log
/// line. How much the other domains' latency suffers is a benchmark, not a test (`sluice-bench hostile`).
@Suite("A hostile domain floods", .serialized)
struct FloodTests {
    /// Runs `sluice-vchan-probe flood` as "rogue" (halted, so its control channel is free) and returns its tally.
    static func flood(_ host: HostFixture, count: Int, rate: Int, lingerMilliseconds: Int) throws -> [String: Int] {
        let probePath = BuiltProducts.path(of: "sluice-vchan-probe")
        let output = try SluiceSystem.Pipe()
        let probe = try ChildProcess.spawn(
            path: probePath,
            arguments: [
                probePath, "flood", "--server", "0", "--port", "512", "--count", String(count), "--rate", String(rate),
                "--linger-ms", String(lingerMilliseconds), "--rendezvous", host.run + "/rogue/vchan.sock",
            ], environment: [], descriptors: [(output.writeEnd, 1), (.standardError, 2)])
        output.writeEnd.close()
        let line = String(decoding: try output.readEnd.readToEnd(), as: UTF8.self)
        output.readEnd.close()
        _ = try probe.wait()
        // "ok flood sent N connect C rate-limited R ... in S ms"
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        #expect(words.first == "ok", "\(line)")
        var tally: [String: Int] = [:]
        var index = 2
        while index + 1 < words.count, words[index] != "in" {
            tally[words[index]] = Int(words[index + 1])
            index += 2
        }
        if index + 1 < words.count { tally["milliseconds"] = Int(words[index + 1]) }
        return tally
    }

    /// Echo calls from work and personal to vault, one after another, until `until` says stop; returns the failures
    /// and the number of calls made.
    static func keepCalling(_ host: HostFixture, until done: @escaping @Sendable () -> Bool) -> (
        SharedList<String>, SharedList<String>, DispatchGroup
    ) {
        let failures = SharedList<String>()
        let made = SharedList<String>()
        let group = HostFixture.concurrently(2) { slot in
            let caller = ["work", "personal"][slot]
            var index: UInt8 = 0
            repeat {
                index &+= 1
                let result = try? host.call(from: caller, "vault", "test.Echo", input: [index])
                made.add(caller)
                if result?.status != 0 || result?.stdout != [index] {
                    failures.add("\(caller) #\(index): \(result?.status ?? -1) \(result?.stderr ?? "")")
                }
            } while !done()
        }
        return (failures, made, group)
    }

    @Test("a storm at 10 000 requests a second is held to the domain's rate, refused with its own code and logged")
    func storm() throws {
        // A rate of 300 a second, so that the limit, not the speed of the machine (or a sanitizer build), is what
        // holds the storm back.
        let host = try HostFixture(options: ["--max-requests-per-second", "300"], captureLog: true)
        let stop = SharedFlag()
        let (failures, made, group) = Self.keepCalling(host, until: stop.isSet)
        let tally = try Self.flood(host, count: 3_000, rate: 10_000, lingerMilliseconds: 500)
        stop.set()
        group.wait()
        #expect(failures.all.isEmpty, "\(failures.all)")
        #expect(made.all.count >= 4)
        // Each request over the rate is refused with rate-limited, and the domain's channel is then left unread for a
        // tenth of a second: the storm waits on its own full ring. So 3 000 requests (about 700 fit in the ring and
        // the queues) cannot go out faster than the burst (300) and then 300 a second allow: about 6 s, where
        // unchecked they take 0.3 s.
        #expect(tally["rate-limited", default: 0] >= 1, "\(tally)")
        #expect(tally["milliseconds", default: 0] >= 2_000, "the storm was not held back: \(tally)")
        #expect(tally["connect", default: 0] <= 64, "\(tally)")
        #expect(host.log().contains("requests from rogue since the last such line: over its rate limit"))
        // Requests refused by rate are not audited one by one (a storm would fill the disk); the others are, the
        // admitted ones when they end (they are half-open: after the target's connect timeout).
        let audited = try host.audit().filter {
            $0["source"] as? String == "rogue" && $0["event"] as? String != "decided"
        }
        .count
        #expect(audited + tally["rate-limited", default: 0] + tally["connect", default: 0] <= 3_000, "\(tally)")
        #expect(try host.call(from: "untrusted", "vault", "test.Echo", input: [9]).stdout == [9])
    }

    @Test("a thousand calls left half-open: 64 are admitted, the rest refused, and the slots come back")
    func halfOpen() throws {
        let host = try HostFixture(captureLog: true)
        let stop = SharedFlag()
        let (failures, _, group) = Self.keepCalling(host, until: stop.isSet)
        let tally = try Self.flood(host, count: 1_000, rate: 0, lingerMilliseconds: 3_000)
        stop.set()
        group.wait()
        #expect(failures.all.isEmpty, "\(failures.all)")
        #expect(tally["connect"] == 64, "\(tally)")
        // The rest are refused (how many answers are in by the end of the linger depends on the machine's speed: all
        // 936 here, fewer under a sanitizer).
        #expect(tally["too-many-calls", default: 0] > 500, "\(tally)")
        #expect(tally.filter { $0.key != "milliseconds" && $0.key != "sent" }.values.reduce(0, +) <= 1_000, "\(tally)")
        // The target gives up on each unserved data channel after its connect timeout (10 s) and reports 125: the
        // domain's slots are free again.
        let deadline = monotonicMilliseconds() + 20_000
        var ended = 0
        while ended < 64 && monotonicMilliseconds() < deadline {
            usleep(250_000)
            ended = try host.audit().filter { $0["source"] as? String == "rogue" && $0["exit_code"] as? Int == 125 }
                .count
        }
        #expect(ended == 64)
        let again = try Self.flood(host, count: 10, rate: 0, lingerMilliseconds: 500)
        #expect(again["connect"] == 10, "\(again)")
        #expect(host.log().contains("cannot reach the caller's data channel"))
    }

    @Test("a caller that never reads its output holds one handler, not the target's memory or other calls")
    func slowReader() throws {
        let host = try HostFixture()
        try host.service("vault", "test.Flood", "exec cat /dev/zero")
        try host.write("policy/20-flood.policy", "test.Flood * @anyvm vault allow\n")
        usleep(1_500_000)  // the policy is reloaded within a second
        let vault = try #require(try host.agentPID("vault"))
        let before = try Self.residentKilobytes(vault)
        // sluice-call's stdout is a pipe nobody reads: it fills, the caller stops reading the ring, the ring fills, the
        // agent stops reading the handler's pipe, and the handler blocks.
        let output = try SluiceSystem.Pipe()
        let path = BuiltProducts.path(of: "sluice-call")
        let reader = try ChildProcess.spawn(
            path: path, arguments: [path, "--agent", host.run + "/work/agent.sock", "vault", "test.Flood"],
            environment: [], descriptors: [(output.writeEnd, 1), (.standardError, 2)])
        output.writeEnd.close()
        let stop = SharedFlag()
        let (failures, made, group) = Self.keepCalling(host, until: stop.isSet)
        usleep(3_000_000)
        stop.set()
        group.wait()
        let after = try Self.residentKilobytes(vault)
        #expect(failures.all.isEmpty, "\(failures.all)")
        #expect(made.all.count >= 4)
        // Without backpressure the agent would gather the flood (about a gigabyte a second from /dev/zero); with it, it
        // holds a few ring and pipe buffers. 128 MiB leaves room for AddressSanitizer's quarantine of freed memory
        // (40 MiB in a `make asan` run), which is not growth.
        #expect(after - before < 131_072, "the vault agent grew from \(before) to \(after) KiB")
        reader.send(signal: SIGKILL)
        _ = try? reader.wait()
        output.readEnd.close()
        // The flood's handler is stopped once its caller is gone.
        let deadline = monotonicMilliseconds() + 5_000
        while try host.pid(of: "cat /dev/zero") != nil && monotonicMilliseconds() < deadline { usleep(100_000) }
        #expect(try host.pid(of: "cat /dev/zero") == nil)
    }

    static func residentKilobytes(_ pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }
}
