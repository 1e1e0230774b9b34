import Foundation
import SluiceRegistry
import SluiceSystem
import SluiceTesting
import SluiceWire
import Testing

@Suite("Service lookup", .serialized)
struct LookupTests {
    @Test("SERVICE+ARG is found in any directory before SERVICE, and directories are searched in order")
    func order() throws {
        let fixture = try RegistryFixture()
        defer { fixture.directory.remove() }
        try fixture.script(fixture.runtime, "test.Svc", "echo generic-run")
        try fixture.script(fixture.system, "test.Svc+arg", "echo specific-etc")
        try fixture.script(fixture.local, "test.Svc+", "echo empty-argument")
        try fixture.script(fixture.system, "test.Svc", "echo generic-etc")
        #expect(
            try fixture.registry.lookup(try ServiceCall(parsing: "test.Svc+arg")).path == fixture.system
                + "/test.Svc+arg")
        #expect(
            try fixture.registry.lookup(try ServiceCall(parsing: "test.Svc+other")).path == fixture.runtime
                + "/test.Svc")
        #expect(try fixture.registry.lookup(try ServiceCall(parsing: "test.Svc")).path == fixture.local + "/test.Svc+")
        #expect(
            String(decoding: try fixture.run("test.Svc+arg").output.standardOutput, as: UTF8.self) == "specific-etc\n")
    }

    @Test("a dangling symlink is skipped, a non-executable file is unusable, nothing found is not-found")
    func entries() throws {
        let fixture = try RegistryFixture()
        defer { fixture.directory.remove() }
        try FileManager.default.createSymbolicLink(
            atPath: fixture.runtime + "/test.Link", withDestinationPath: "/nonexistent")
        try fixture.script(fixture.system, "test.Link", "echo found")
        #expect(
            try fixture.registry.lookup(try ServiceCall(parsing: "test.Link")).path == fixture.system + "/test.Link")
        try "data".write(toFile: fixture.runtime + "/test.Plain", atomically: false, encoding: .utf8)
        do {
            _ = try fixture.registry.lookup(try ServiceCall(parsing: "test.Plain"))
            Issue.record("a plain file was accepted")
        } catch {
            #expect(error.code == .serviceUnusable)
        }
        do {
            _ = try fixture.registry.lookup(try ServiceCall(parsing: "test.Missing+x"))
            Issue.record("found a missing service")
        } catch {
            #expect(error.code == .serviceNotFound)
            #expect(error.message.contains("test.Missing+x"))
        }
    }

    @Test("a service name with a forbidden character never reaches the file system")
    func forbiddenName() {
        for name in ["../../bin/sh", "a/b", "a b", "a$b", ".."] {
            do {
                _ = try ServiceCall(parsing: name)
                Issue.record("accepted \(name)")
            } catch {
                #expect(error.code == .invalidServiceName)
            }
        }
    }
}

@Suite("Handler execution", .serialized)
struct ExecutionTests {
    @Test("a qrexec-style script sees qrexec's argv and environment")
    func environment() throws {
        let fixture = try RegistryFixture()
        defer { fixture.directory.remove() }
        try fixture.script(
            fixture.system, "test.Env", #"printf '%s|' "$#" "$1"; env | grep -E '^(QREXEC|SLUICE)_' | sort"#)
        let (result, output) = try fixture.run("test.Env+some-arg", source: "work") {
            $0.requestedTarget = try! TargetName("vault")
            $0.callID = RequestID(rawValue: 42)
        }
        #expect(result.status == ExitStatus(code: 0, reason: .exited))
        let text = String(decoding: output.standardOutput, as: UTF8.self)
        #expect(text.hasPrefix("1|some-arg|"))
        for line in [
            "QREXEC_REMOTE_DOMAIN=work", "QREXEC_SERVICE_ARGUMENT=some-arg",
            "QREXEC_SERVICE_FULL_NAME=test.Env+some-arg",
            "QREXEC_REQUESTED_TARGET_TYPE=", "SLUICE_CALL_ID=42", "SLUICE_REQUESTED_TARGET=vault", "SLUICE_SOURCE=work",
        ] {
            #expect(text.contains(line + "\n") || text.contains("|" + line + "\n"), "\(line) in \(text)")
        }
        #expect(text.contains("QREXEC_AGENT_PID="))
        let bare = String(decoding: try fixture.run("test.Env").output.standardOutput, as: UTF8.self)
        #expect(bare.hasPrefix("0||"), "no argv[1] without an argument: \(bare)")
        #expect(bare.contains("QREXEC_SERVICE_ARGUMENT=\n"))
        #expect(bare.contains("QREXEC_SERVICE_FULL_NAME=test.Env+\n"))
    }

    @Test("in the admin domain the requested target's type and name are set")
    func adminEnvironment() throws {
        let fixture = try RegistryFixture()
        defer { fixture.directory.remove() }
        try fixture.script(fixture.system, "test.Env", "env | grep -E '^QREXEC_REQUESTED' | sort")
        let keyword = try fixture.run("test.Env") {
            $0.inAdminDomain = true
            $0.requestedTarget = try! TargetName("@adminvm")
        }
        #expect(
            String(decoding: keyword.output.standardOutput, as: UTF8.self)
                == "QREXEC_REQUESTED_TARGET_KEYWORD=adminvm\nQREXEC_REQUESTED_TARGET_TYPE=keyword\n")
        let name = try fixture.run("test.Env") {
            $0.inAdminDomain = true
            $0.requestedTarget = try! TargetName("dom0")
        }
        #expect(
            String(decoding: name.output.standardOutput, as: UTF8.self)
                == "QREXEC_REQUESTED_TARGET=dom0\nQREXEC_REQUESTED_TARGET_TYPE=name\n")
    }

    @Test("stdin reaches the handler; stdout and stderr come back apart; exit codes and signals map to 128+n")
    func streamsAndStatus() throws {
        let fixture = try RegistryFixture()
        defer { fixture.directory.remove() }
        try fixture.script(fixture.system, "test.Cat", "cat; echo to-stderr >&2; exit 3")
        let input = Array(repeating: UInt8(ascii: "x"), count: 3_000_000)
        let (result, output) = try fixture.run("test.Cat", input: input)
        #expect(output.standardOutput == input)
        #expect(String(decoding: output.standardError, as: UTF8.self) == "to-stderr\n")
        #expect(result.status == ExitStatus(code: 3, reason: .exited))
        #expect(result.bytesIn == 3_000_000)
        #expect(result.bytesOut == 3_000_010)
        try fixture.script(fixture.system, "test.Die", "kill -9 $$")
        #expect(try fixture.run("test.Die").result.status == ExitStatus(code: 137, reason: .signaled))
    }

    @Test("no descriptor but stdin, stdout and stderr reaches a handler")
    func noLeaks() throws {
        let fixture = try RegistryFixture()
        defer { fixture.directory.remove() }
        try FileManager.default.createSymbolicLink(
            atPath: fixture.system + "/test.Sleep", withDestinationPath: "/bin/sleep")
        let extra = try SluiceSystem.Pipe()
        defer {
            extra.readEnd.close()
            extra.writeEnd.close()
        }
        let inheritable = dup(extra.writeEnd.rawValue)
        defer { close(inheritable) }
        let handler = try fixture.launcher().start(
            CallContext(call: try ServiceCall(parsing: "test.Sleep+5"), source: try DomainName("work")))
        guard case .process(let process) = handler.kind else { throw TestFailure("not a process") }
        // Just after exec the dynamic loader holds each library it maps open for a moment (seen as fd 3 once in CI
        // under ThreadSanitizer). A leaked descriptor stays for the handler's life, so wait for the listing to settle.
        let directory = "/proc/\(process.pid)/fd"
        var descriptors: [String] = []
        let deadline = ContinuousClock.now + .seconds(2)
        repeat {
            descriptors = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
            if descriptors == ["0", "1", "2"] { break }
            usleep(10_000)
        } while ContinuousClock.now < deadline
        let targets = descriptors.map {
            "\($0) → " + ((try? FileManager.default.destinationOfSymbolicLink(atPath: directory + "/" + $0)) ?? "?")
        }
        #expect(descriptors == ["0", "1", "2"], "descriptors: \(targets)")
        handler.stop(graceMilliseconds: 100)
    }

    @Test(
        "a deadline sends SIGTERM; a handler that ignores it gets SIGKILL after the grace period, and the caller learns which"
    )
    func deadlines() throws {
        let fixture = try RegistryFixture()
        defer { fixture.directory.remove() }
        try fixture.script(fixture.system, "test.Slow", "sleep 30")
        try fixture.script(fixture.system, "test.Stubborn", "trap '' TERM; sleep 30")
        try fixture.configure("test.Slow", "timeout = 1\n")
        try fixture.configure("test.Stubborn", "timeout = 1\n")
        var start = monotonicMilliseconds()
        let terminated = try fixture.run("test.Slow", grace: 300).result
        #expect(terminated.status.reason == .timeoutTerminated)
        #expect(terminated.status.code == 143)
        #expect(terminated.error?.code == .handlerTimedOut)
        #expect(monotonicMilliseconds() - start < 5_000)
        start = monotonicMilliseconds()
        let killed = try fixture.run("test.Stubborn", grace: 300).result
        #expect(killed.status.reason == .timeoutKilled)
        #expect(killed.status.code == 137)
        let elapsed = monotonicMilliseconds() - start
        #expect(elapsed >= 1_250 && elapsed < 5_000, "\(elapsed) ms")
        let fromOrder = try fixture.run("test.Slow", context: { $0.timeoutMilliseconds = 200 }, grace: 300).result
        #expect(fromOrder.status.reason == .timeoutTerminated)
    }

    @Test("output over max-output-bytes is cut and ends the call with its own error")
    func outputCap() throws {
        let fixture = try RegistryFixture()
        defer { fixture.directory.remove() }
        try fixture.script(fixture.system, "test.Flood", "head -c 10000000 /dev/zero")
        try fixture.configure("test.Flood", "max-output-bytes = 1000 # a kilobyte\n")
        let (result, output) = try fixture.run("test.Flood", grace: 300)
        #expect(output.standardOutput.count == 1_000)
        #expect(result.status == ExitStatus(code: 125, reason: .outputLimit))
        #expect(result.error?.code == .outputLimitExceeded)
    }

    @Test("calls over max-concurrent are refused, not queued, and a finished call frees its place")
    func concurrencyCap() throws {
        let fixture = try RegistryFixture()
        defer { fixture.directory.remove() }
        try fixture.script(fixture.system, "test.One", "sleep 30")
        try fixture.configure("test.One", "max-concurrent = 1\n")
        let limiter = ConcurrencyLimiter()
        let launcher = fixture.launcher(limiter)
        let context = CallContext(call: try ServiceCall(parsing: "test.One"), source: try DomainName("work"))
        var first: RunningHandler? = try launcher.start(context)
        do {
            _ = try launcher.start(context)
            Issue.record("a second call was admitted")
        } catch {
            #expect(error.code == .serviceBusy)
        }
        first?.stop(graceMilliseconds: 100)
        first = nil
        #expect(limiter.count("test.One") == 0)
        let again = try launcher.start(context)
        again.stop(graceMilliseconds: 100)
    }

    /// Input that gives some bytes, then fails, as a data channel carrying a malformed frame does.
    final class BrokenInput: HandlerInput {
        var gave = false
        var readiness: FileDescriptor? { nil }
        func read(into buffer: UnsafeMutableRawBufferPointer) throws(SluiceError) -> Int? {
            guard !gave else { throw SluiceError(.invalidJSON, "a malformed frame") }
            gave = true
            buffer[0] = UInt8(ascii: "x")
            return 1
        }
    }

    @Test("a broken input stops the handler instead of looking like the end of stdin")
    func brokenInput() throws {
        let fixture = try RegistryFixture()
        defer { fixture.directory.remove() }
        try fixture.script(fixture.system, "test.Count", "wc -c")
        let handler = try fixture.launcher().start(
            CallContext(call: try ServiceCall(parsing: "test.Count"), source: try DomainName("work")))
        let output = CollectedOutput()
        let result = try HandlerPump().run(handler, input: BrokenInput(), output: output, graceMilliseconds: 300)
        #expect(result.status.reason == .cancelled)
        #expect(result.status.code != 0)
        #expect(result.error?.code == .invalidJSON)
    }

    @Test("a cancelled call stops its handler")
    func cancellation() throws {
        let fixture = try RegistryFixture()
        defer { fixture.directory.remove() }
        try fixture.script(fixture.system, "test.Slow", "sleep 30")
        let handler = try fixture.launcher().start(
            CallContext(call: try ServiceCall(parsing: "test.Slow"), source: try DomainName("work")))
        let pump = try HandlerPump()
        let canceller = Thread {
            Thread.sleep(forTimeInterval: 0.2)
            pump.cancel()
        }
        canceller.start()
        let result = pump.run(handler, input: nil, output: CollectedOutput(), graceMilliseconds: 300)
        #expect(result.status.reason == .cancelled)
        #expect(result.error?.code == .cancelled)
    }

    @Test("with root, force-user runs the handler as that user in its home")
    func forceUser() throws {
        guard getuid() == 0, (try? UserAccount.lookup("nobody")) != nil else { return }
        let fixture = try RegistryFixture()
        defer { fixture.directory.remove() }
        try fixture.script(fixture.system, "test.Who", #"echo "$(id -un) $USER $HOME""#)
        try fixture.configure("test.Who", "force-user = 'nobody'\n")
        let account = try UserAccount.lookup("nobody")
        let text = String(decoding: try fixture.run("test.Who").output.standardOutput, as: UTF8.self)
        #expect(text == "nobody nobody \(account.home)\n")
    }
}

struct TestFailure: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

@Suite("Per-service configuration")
struct ConfigurationTests {
    @Test("qrexec's keys and Sluice's limits parse")
    func valid() throws {
        let configuration = try ServiceConfiguration(
            parsing: """
                # comment
                wait-for-session = 1
                skip-service-descriptor = true
                exit-on-client-eof = false # trailing comment
                timeout = 30
                max-concurrent = 4
                max-output-bytes = 1048576
                """, file: "test.Svc")
        #expect(configuration.waitForSession)
        #expect(configuration.skipServiceDescriptor)
        #expect(configuration.timeoutSeconds == 30)
        #expect(configuration.maxConcurrent == 4)
        #expect(configuration.maxOutputBytes == 1_048_576)
        #expect(try ServiceConfiguration(parsing: "force-user = 'user'\n", file: "x").forceUser == "user")
    }

    @Test(
        "invalid files are rejected with file:line",
        arguments: [
            ("color = 'red'\n", 1, "unknown key color"),
            ("timeout = 1\ntimeout = 2\n", 2, "given twice"),
            ("force-user = \"user\"\n", 1, "double-quoted"),
            ("[section]\n", 1, "sections"),
            ("  timeout = 1\n", 1, "leading whitespace"),
            ("timeout\n", 1, "expected key = value"),
            ("timeout = '1'\n", 1, "positive integer"),
            ("timeout = 01\n", 1, "invalid value"),
            ("skip-service-descriptor = yes\n", 1, "invalid value"),
            ("exit-on-client-eof = 1\n", 1, "true or false"),
            ("force-user = '''user'''\n", 1, "multi-line"),
            ("max-concurrent = 0\n", 1, "positive integer"),
        ])
    func invalid(_ text: String, _ line: Int, _ fragment: String) {
        do {
            _ = try ServiceConfiguration(parsing: text, file: "/etc/sluice/rpc-config/test.Svc")
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.code == .serviceConfigInvalid)
            #expect(error.message.hasPrefix("/etc/sluice/rpc-config/test.Svc:\(line): "), "\(error)")
            #expect(error.message.contains(fragment), "\(error)")
        }
    }

    @Test("force-user conflicts with the socket-only keys, as in qrexec")
    func conflict() {
        #expect(throws: SluiceError.self) {
            try ServiceConfiguration(parsing: "force-user = 'user'\nexit-on-service-eof = true\n", file: "x")
        }
    }
}
