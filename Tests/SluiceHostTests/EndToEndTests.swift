import Foundation
import SluiceSystem
import SluiceTesting
import SluiceWire
import Testing

@Suite("Calls between domains through sluice-host", .serialized)
struct EndToEndTests {
    @Test("an allowed call runs the handler with the argument, and stdout, stderr and the exit code come back")
    func allowed() throws {
        let host = try HostFixture()
        let result = try host.call(from: "work", "vault", "test.Echo+some-arg", input: Array("hello\n".utf8))
        #expect(result.status == 0)
        #expect(String(decoding: result.stdout, as: UTF8.self) == "hello\n")
        #expect(result.stderr == "argument=some-arg source=work\n")
        let args = try host.call(from: "work", "vault", "test.Args+a.b")
        #expect(String(decoding: args.stdout, as: UTF8.self) == "1|a.b|test.Args+a.b")
    }

    @Test("a handler that writes nothing until the end of its stdin gets that end (data and end in one wake-up)")
    func silentUntilEnd() throws {
        let host = try HostFixture()
        for size in [0, 1, 35, 70_000] {
            let result = try host.call(from: "work", "vault", "test.Count", input: [UInt8](repeating: 65, count: size))
            #expect(result.status == 0, "\(size): \(result.stderr)")
            #expect(
                String(decoding: result.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                    == "\(size)")
        }
    }

    @Test("a handler that exits without reading its stdin does not take the agent down (SIGPIPE)")
    func unreadInput() throws {
        let host = try HostFixture()
        let input = [UInt8](repeating: 7, count: 4_000_000)
        let first = try host.call(from: "work", "vault", "test.Args+x", input: input)
        #expect(first.status == 0)
        #expect(String(decoding: first.stdout, as: UTF8.self) == "1|x|test.Args+x")
        #expect(try host.call(from: "work", "vault", "test.Echo", input: [1]).status == 0)
    }

    @Test("a refused call exits 126 without naming policy details, and an unknown service 127")
    func refusedAndUnknown() throws {
        let host = try HostFixture()
        let refused = try host.call(from: "untrusted", "work", "test.Echo")
        #expect(refused.status == 126)
        #expect(refused.stderr == "Request refused\n")
        let unknown = try host.call(from: "work", "vault", "test.Missing")
        #expect(unknown.status == 127)
        #expect(unknown.stderr.contains("not found"))
    }

    @Test("@default follows target=, and a handler killed by a signal gives 128+n")
    func redirectAndSignal() throws {
        let host = try HostFixture()
        let redirected = try host.call(from: "work", "", "test.Echo", input: [1, 2, 3])
        #expect(redirected.status == 0)
        #expect(redirected.stdout == [1, 2, 3])
        #expect(try host.call(from: "work", "vault", "test.Die").status == 137)
    }

    @Test("calls to the admin domain are policy-gated; calls from it bypass policy")
    func adminDomain() throws {
        let host = try HostFixture()
        let toAdmin = try host.call(from: "work", "dom0", "test.Echo", input: [9])
        #expect(toAdmin.status == 0)
        #expect(toAdmin.stdout == [9])
        #expect(try host.call(from: "untrusted", "dom0", "test.Args").status == 126)
        let fromAdmin = try host.call(from: "dom0", "untrusted", "test.Echo", input: [7])
        #expect(fromAdmin.status == 0, "\(fromAdmin.stderr)")
        #expect(fromAdmin.stdout == [7])
    }

    @Test("a halted target is started for a call when policy allows autostart, and refused with autostart=no")
    func autostart() throws {
        let host = try HostFixture()
        #expect(try host.call(from: "work", "sleepy", "test.Args").status == 126)
        let started = try host.call(from: "work", "sleepy", "test.Echo", input: [4, 2])
        #expect(started.status == 0, "\(started.stderr)")
        #expect(started.stdout == [4, 2])
    }

    @Test("@dispvm makes a fresh disposable from the template's services for each call and destroys it after")
    func disposable() throws {
        let host = try HostFixture()
        let first = try host.call(from: "work", "@dispvm", "test.Open+example.org", input: Array("page".utf8))
        #expect(first.status == 0, "\(first.stderr)")
        #expect(String(decoding: first.stdout, as: UTF8.self) == "opened example.org for work\npage")
        let second = try host.call(from: "work", "@dispvm:work-dvm", "test.Open+b")
        #expect(second.status == 0, "\(second.stderr)")
        let fromAdmin = try host.call(from: "dom0", "@dispvm:work-dvm", "test.Open+c")
        #expect(fromAdmin.status == 0, "\(fromAdmin.stderr)")
        #expect(String(decoding: fromAdmin.stdout, as: UTF8.self) == "opened c for dom0\n")
        #expect(try host.call(from: "untrusted", "@dispvm:work-dvm", "test.Open").status == 126)
        // The template itself never runs, and every disposable is gone once its call has ended.
        let deadline = monotonicMilliseconds() + 3_000
        var targets: [String] = []
        repeat {
            targets = try host.audit().filter { $0["event"] as? String == "ended" }.compactMap {
                $0["target"] as? String
            }
            .filter { $0.hasPrefix("disp") }
            if targets.count == 3 { break }
            usleep(20_000)
        } while monotonicMilliseconds() < deadline
        #expect(targets.count == 3 && Set(targets).count == 3, "\(targets)")
        var left: [String] = []
        repeat {
            left = (try FileManager.default.contentsOfDirectory(atPath: host.run)).filter { $0.hasPrefix("disp") }
            if left.isEmpty { break }
            usleep(20_000)
        } while monotonicMilliseconds() < deadline
        #expect(left.isEmpty, "disposables left behind: \(left)")
        #expect(!FileManager.default.fileExists(atPath: host.run + "/work-dvm/agent.sock"))
    }

    @Test("100 MB in and out with matching checksums")
    func bulk() throws {
        let host = try HostFixture()
        var pattern = Pattern(seed: 99)
        let block = pattern.bytes(1_000_003)
        var data: [UInt8] = []
        data.reserveCapacity(100_000_300)
        for _ in 0..<100 { data += block }
        let result = try host.call(from: "work", "vault", "test.Echo", input: data)
        #expect(result.status == 0)
        #expect(result.stdout.count == data.count)
        #expect(result.stdout == data)
    }

    @Test("ask goes to the ask command: yes allows the chosen target, no refuses")
    func ask() throws {
        let yes = try HostFixture(askAnswer: "allow:vault")
        let allowed = try yes.call(from: "work", "vault", "test.Ask")
        #expect(allowed.status == 0)
        #expect(String(decoding: allowed.stdout, as: UTF8.self) == "asked-and-allowed\n")
        let question = try String(contentsOfFile: yes.root + "/ask-question.json", encoding: .utf8)
        #expect(question.contains(#""source":"work""#))
        #expect(question.contains(#""service":"test.Ask""#))
        let no = try HostFixture(askAnswer: "deny")
        #expect(try no.call(from: "work", "vault", "test.Ask").status == 126)
        let wrong = try HostFixture(askAnswer: "allow:untrusted")
        #expect(try wrong.call(from: "work", "vault", "test.Ask").status == 126)
    }

    @Test("the audit log holds a decided and an ended line per call that ran, one line per refusal")
    func auditLog() throws {
        let host = try HostFixture()
        _ = try host.call(from: "work", "vault", "test.Echo+x", input: [1, 2])
        _ = try host.call(from: "untrusted", "work", "test.Echo")
        _ = try host.call(from: "work", "vault", "test.Die")
        var lines: [[String: Any]] = []
        for _ in 0..<100 {
            lines = try host.audit()
            if lines.count >= 5 { break }
            usleep(20_000)
        }
        #expect(lines.count == 5)
        let decided = lines.filter { $0["event"] as? String == "decided" }
        #expect(decided.count == 2)
        #expect(decided.allSatisfy { $0["exit_code"] == nil && $0["decision"] as? String == "allow" })
        let records = lines.filter { $0["event"] as? String != "decided" }
        #expect(
            Set(decided.compactMap { $0["call"] as? Int })
                == Set(records.compactMap { $0["exit_code"] != nil ? $0["call"] as? Int : nil }))
        let allowed = try #require(
            records.first { ($0["service"] as? String) == "test.Echo" && ($0["source"] as? String) == "work" })
        #expect(allowed["decision"] as? String == "allow")
        #expect(allowed["rule"] as? String == "30-test:1")
        #expect(allowed["target"] as? String == "vault")
        #expect(allowed["argument"] as? String == "x")
        #expect(allowed["event"] as? String == "ended")
        #expect(allowed["exit_code"] as? Int == 0)
        #expect(allowed["bytes_in"] as? Int == 2)
        #expect(allowed["duration_ms"] != nil)
        let denied = try #require(records.first { ($0["source"] as? String) == "untrusted" })
        #expect(denied["event"] as? String == "refused")
        #expect(denied["decision"] as? String == "deny")
        #expect(denied["reason"] as? String == "deny-rule")
        let killed = try #require(records.first { ($0["service"] as? String) == "test.Die" })
        #expect(killed["exit_code"] as? Int == 137)
    }

    @Test("200 concurrent calls from 10 domains all succeed")
    func concurrent() throws {
        let domains = (0..<6).map { "d\($0)" }
        let host = try HostFixture(extraDomains: domains)
        let callers = ["work", "personal", "untrusted", "dom0"] + domains
        let failures = SharedList<String>()
        HostFixture.concurrently(200) { index in
            let caller = callers[index % callers.count]
            let payload = Array("call \(index)".utf8)
            let result = try? host.call(from: caller, "vault", "test.Echo", input: payload)
            if result?.status != 0 || result?.stdout != payload {
                failures.add("\(caller) #\(index): \(result?.status ?? -1) \(result?.stderr ?? "")")
            }
        }.wait()
        #expect(failures.all.isEmpty, "\(failures.all.prefix(5))")
    }
}
