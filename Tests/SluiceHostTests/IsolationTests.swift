import Foundation
import SluiceSystem
import SluiceTesting
import SluiceWire
import Testing

/// The local backend as a real boundary: under root, each domain is a user of its own, every socket checks the
/// kernel's credentials, the broker is bounded and checks what it is given (docs/threat-model.md, "The local
/// backend").
@Suite(
    "Domains on one host are kept apart by the kernel", .serialized,
    .enabled(if: geteuid() == 0, "needs root: sluice-host gives domains users of their own only as root"))
struct IsolationTests {
    static let policy =
        """
        test.Id     *  @anyvm  @anyvm           allow
        test.Id     *  @anyvm  dom0             allow
        test.Id     *  work    @dispvm:work-dvm allow
        test.Slow   *  @anyvm  vault            allow
        """ + "\n" + HostFixture.policy

    static func host(_ options: [String] = []) throws -> HostFixture {
        let host = try HostFixture(policy: policy, options: options, captureLog: true)
        for domain in ["vault", "work", "work-dvm", "dom0"] { try host.service(domain, "test.Id", "id -un; id -u") }
        try host.service("vault", "test.Slow", "sleep 2; echo finished")
        return host
    }

    /// Runs `command` as `uid` (all groups dropped); returns its status and what it wrote to stdout and stderr.
    static func run(as uid: UInt32, gid: UInt32, _ command: [String], environment: [String] = []) throws -> (
        status: Int32, output: String
    ) {
        let output = try SluiceSystem.Pipe()
        let arguments = ["/usr/bin/setpriv", "--reuid=\(uid)", "--regid=\(gid)", "--clear-groups"] + command
        let child = try ChildProcess.spawn(
            path: arguments[0], arguments: arguments, environment: environment,
            descriptors: [(output.writeEnd, 1), (output.writeEnd, 2)])
        output.writeEnd.close()
        let text = String(decoding: try output.readEnd.readToEnd(), as: UTF8.self)
        output.readEnd.close()
        return (try child.wait().shellStatus, text)
    }

    @Test("each domain's handlers run as its own user, a disposable's as a user removed with it")
    func handlersRunAsTheirDomain() throws {
        let host = try Self.host()
        let vault = try #require(domainAccount("vault"))
        let work = try #require(domainAccount("work"))
        #expect(vault.uid != work.uid && vault.uid != 0)
        let inVault = try host.call(from: "work", "vault", "test.Id")
        #expect(String(decoding: inVault.stdout, as: UTF8.self) == "sluice-vault\n\(vault.uid)\n", "\(inVault)")
        let inWork = try host.call(from: "vault", "work", "test.Id")
        #expect(String(decoding: inWork.stdout, as: UTF8.self) == "sluice-work\n\(work.uid)\n", "\(inWork)")
        // The admin domain stays root.
        #expect(String(decoding: try host.call(from: "work", "dom0", "test.Id").stdout, as: UTF8.self) == "root\n0\n")
        let disposable = String(
            decoding: try host.call(from: "work", "@dispvm:work-dvm", "test.Id").stdout, as: UTF8.self)
        let user = try #require(disposable.split(separator: "\n").first.map(String.init))
        #expect(user.hasPrefix("sluice-disp"), "\(disposable)")
        let deadline = monotonicMilliseconds() + 10_000
        while getpwnam(user) != nil && monotonicMilliseconds() < deadline { usleep(20_000) }
        #expect(getpwnam(user) == nil, "\(user) outlived its disposable")
        // Each domain's directory and agent socket are its own.
        var info = stat()
        #expect(stat(host.run + "/work", &info) == 0 && info.st_uid == work.uid && info.st_mode & 0o777 == 0o700)
        #expect(stat(host.run + "/work/agent.sock", &info) == 0 && info.st_mode & 0o777 == 0o600)
    }

    @Test("another domain's uid, or a stranger's, cannot call as a domain: the file modes, then the credentials")
    func anotherUIDCannotCall() throws {
        let host = try Self.host()
        let vault = try #require(domainAccount("vault"))
        let call = BuiltProducts.path(of: "sluice-call")
        let arguments = [call, "--agent", host.run + "/work/agent.sock", "vault", "test.Id"]
        for (uid, gid) in [(vault.uid, vault.gid), (UInt32(4_243), UInt32(4_243))] {
            let blocked = try Self.run(as: uid, gid: gid, arguments)
            #expect(blocked.status == 125 && blocked.output.contains("Permission denied"), "\(blocked)")
        }
        // Past the modes (as a misconfigured deployment might leave them), the agent's credential check refuses.
        chmod(host.run + "/work", 0o777)
        chmod(host.run + "/work/agent.sock", 0o666)
        let refused = try Self.run(as: vault.uid, gid: vault.gid, arguments)
        #expect(refused.status == 125 && refused.output.contains("may not call as domain work"), "\(refused)")
        #expect(host.log().contains("refused a local caller of uid \(vault.uid): it is not of domain work"))
        // The domain itself still calls.
        let work = try #require(domainAccount("work"))
        let allowed = try Self.run(as: work.uid, gid: work.gid, arguments)
        #expect(allowed.status == 0 && allowed.output.hasPrefix("sluice-vault"), "\(allowed)")
    }

    @Test("another uid cannot use a domain's vchan rendezvous: the file mode, then the broker's wrong-uid")
    func anotherUIDCannotUseTheRendezvous() throws {
        let host = try Self.host()
        let vault = try #require(domainAccount("vault"))
        let probe = BuiltProducts.path(of: "sluice-vchan-probe")
        let arguments = [
            probe, "client", "--server", "0", "--port", "512", "--expect-refused", "--rendezvous",
            host.run + "/vchan/1.sock",
        ]
        let blocked = try Self.run(as: vault.uid, gid: vault.gid, arguments)
        #expect(blocked.output.contains("Permission denied"), "\(blocked)")
        chmod(host.run + "/vchan/1.sock", 0o666)
        let refused = try Self.run(as: vault.uid, gid: vault.gid, arguments)
        #expect(refused.status == 0 && refused.output.contains("wrong-uid"), "\(refused)")
    }

    @Test("a domain that floods the broker gets its own error and a log line; 50 calls from two others all succeed")
    func descriptorFlood() throws {
        let host = try Self.host()
        let (probe, output) = try HostileDomainTests.rogue(
            host, ["fd-flood", "--connections", "400", "--registrations", "5000", "--hold-ms", "20000"])
        defer { output.close() }
        let line = try CallIntegrityTests.firstLine(output)
        #expect(line.contains("connections") && line.hasSuffix("refused broker-full"), "\(line)")
        #expect(line.contains("refused broker-full registrations"), "\(line)")
        let (failures, group) = HostileDomainTests.legitimateCalls(host, count: 50)
        group.wait()
        #expect(failures.all.isEmpty, "\(failures.all)")
        #expect(host.log().contains("vchan broker: refused domain 6"), "\(host.log())")
        probe.send(signal: SIGKILL)
        _ = try? probe.wait()
    }

    @Test(
        "descriptors that are not a vchan's are refused with their codes; no handler, thread or zombie is left",
        arguments: [
            ("pipe", "wrong-descriptor"), ("unsealed", "wrong-descriptor"), ("short", "vchan-invalid-ring"),
            ("file", "wrong-descriptor"), ("socket", "wrong-descriptor"),
        ])
    func wrongDescriptors(kind: String, code: String) throws {
        let host = try Self.host()
        let vault = try #require(try host.agentPID("vault"))
        let threads = { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(vault)/task").count) ?? -1 }
        let before = threads()
        let line = try CallIntegrityTests.run(host, ["bad-caller", "--kind", kind])
        #expect(line == "ok bad-caller \(kind) \(code)", "\(line)")
        // The call ends (the rogue cancelled it; the target gives up reaching it at once), on record.
        let ended = try #require(
            try CallIntegrityTests.awaitRecord(host) {
                $0["source"] as? String == "rogue" && $0["event"] as? String == "ended"
            })
        #expect(ended["exit_code"] as? Int == 125 && ended["bytes_out"] as? Int == 0, "\(ended)")
        // The target's agent is back where it was: no thread stuck in a wait, no child left.
        let deadline = monotonicMilliseconds() + 10_000
        while threads() > before && monotonicMilliseconds() < deadline { usleep(20_000) }
        #expect(threads() <= before, "vault's agent had \(before) threads, now \(threads())")
        let children = try String(contentsOfFile: "/proc/\(vault)/task/\(vault)/children", encoding: .utf8)
        #expect(children.trimmingCharacters(in: .whitespaces).isEmpty, "vault's agent has children: \(children)")
        #expect(try host.call(from: "work", "vault", "test.Echo", input: [5]).stdout == [5])
    }

    @Test("an agent over its budgets refuses with their own codes, and its domain calls again once under them")
    func agentBudgets() throws {
        let host = try Self.host(["--agent-max-clients", "2", "--agent-max-running-calls", "2"])
        // Two callers of work's agent that hold their connections, and a third that is refused.
        var held: [SocketFrameLink] = []
        for _ in 0..<2 {
            let link = SocketFrameLink(
                socket: DatagramSocket(
                    descriptor: try UnixSocket.connect(to: host.run + "/work/agent.sock", kind: .datagram)),
                receiving: .agentToClient)
            try link.send(.hello(.current))
            #expect(try link.receive() == .hello(.current))
            held.append(link)
        }
        let third = try host.call(from: "work", "vault", "test.Echo", input: [1])
        #expect(third.status == 125 && third.stderr.contains("already serves 2 local callers"), "\(third)")
        #expect(try host.call(from: "personal", "vault", "test.Echo", input: [2]).stdout == [2])
        for link in held { link.socket.descriptor.close() }
        // Three slow calls into vault: two run, the third ends at once with 125.
        let statuses = SharedList<Int32>()
        HostFixture.concurrently(3) { index in
            statuses.add((try? host.call(from: index == 0 ? "personal" : "work", "vault", "test.Slow").status) ?? -1)
        }.wait()
        #expect(statuses.all.sorted() == [0, 0, 125], "\(statuses.all)")
        #expect(host.log().contains("too-many-handlers"), "\(host.log())")
        #expect(try host.call(from: "work", "vault", "test.Echo", input: [3]).stdout == [3])
    }

    @Test("with --shared-uid every domain runs as the host's uid, and the host says they are not isolated")
    func sharedUID() throws {
        let host = try Self.host(["--shared-uid"])
        #expect(String(decoding: try host.call(from: "work", "vault", "test.Id").stdout, as: UTF8.self) == "root\n0\n")
        #expect(host.log().contains("domains are not isolated from each other"), "\(host.log())")
    }
}
