import Foundation
import SluiceSystem
import SluiceTesting
import SluiceWire
import Testing

/// A real `sluice-host` in a temporary directory: an inventory, a policy, and service scripts per domain.
final class HostFixture: @unchecked Sendable {
    let directory: TemporaryDirectory
    var root: String { directory.path }
    var run: String { root + "/run" }
    private var host: ChildProcess?
    private var output: FileDescriptor?

    static let inventory = """
        {"domains": [
          {"name": "dom0", "type": "AdminVM", "power_state": "Running"},
          {"name": "work", "power_state": "Running", "tags": ["trusted"], "default_dispvm": "work-dvm"},
          {"name": "vault", "power_state": "Running"},
          {"name": "untrusted", "power_state": "Running"},
          {"name": "personal", "power_state": "Running", "tags": ["trusted"]},
          {"name": "sleepy", "power_state": "Halted"},
          {"name": "rogue", "power_state": "Halted"},
          {"name": "work-dvm", "power_state": "Halted", "template_for_dispvms": true}
        ]}
        """

    static let policy = """
        test.Echo       *  @anyvm      vault      allow
        test.Echo       *  @anyvm      @default   allow target=vault
        test.Echo       *  @anyvm      dom0       allow
        test.Ask        *  @tag:trusted vault     ask
        test.Die        *  @anyvm      vault      allow
        test.Sleep      *  @anyvm      vault      allow
        test.Missing    *  @anyvm      vault      allow
        test.Args       *  @anyvm      vault      allow
        test.Echo       *  work        sleepy     allow
        test.Args       *  work        sleepy     allow autostart=no
        test.Open       *  work        @dispvm    allow
        test.Count      *  @anyvm      vault      allow
        test.Open       *  work        @dispvm:work-dvm allow
        *               *  @anyvm      @anyvm     deny
        """

    init(
        extraDomains: [String] = [], policy: String = HostFixture.policy, askAnswer: String? = nil,
        maxCallsPerDomain: Int? = nil, options: [String] = [], askDelaySeconds: Double = 0,
        captureLog: Bool = false, wrapper: [String] = []
    )
        throws
    {
        directory = try TemporaryDirectory(prefix: "sluice-host")
        chmod(root, 0o755)
        try write("policy/30-test.policy", policy)
        var inventory = Self.inventory
        if !extraDomains.isEmpty {
            let extra = extraDomains.map { #"{"name": "\#($0)", "power_state": "Running"}"# }.joined(separator: ",\n")
            inventory = inventory.replacingOccurrences(of: "\n]}", with: ",\n" + extra + "\n]}")
        }
        try write("inventory.json", inventory)
        for domain in ["dom0", "work", "vault", "untrusted", "personal", "sleepy"] + extraDomains {
            try service(domain, "test.Echo", #"echo "argument=$1 source=$QREXEC_REMOTE_DOMAIN" >&2; cat"#)
        }
        try service("vault", "test.Ask", "echo asked-and-allowed")
        try service("vault", "test.Count", "exec wc -c")
        try service("vault", "test.Die", "kill -9 $$")
        try service("vault", "test.Sleep", "sleep 30")
        try service("work-dvm", "test.Open", #"echo "opened $1 for $QREXEC_REMOTE_DOMAIN"; cat"#)
        try service("vault", "test.Args", #"printf '%s|%s|%s' "$#" "$1" "$QREXEC_SERVICE_FULL_NAME""#)
        var arguments = [
            BuiltProducts.path(of: "sluice-host"), "--run-dir", run, "--inventory", root + "/inventory.json",
            "--policy-dir",
            root + "/policy", "--services-root", root + "/services",
        ]
        if let maxCallsPerDomain { arguments += ["--max-calls-per-domain", String(maxCallsPerDomain)] }
        arguments += options
        if let askAnswer {
            try write(
                "ask.sh",
                "#!/bin/sh\ncat > \(root)/ask-question.json\nsleep \(askDelaySeconds)\ntouch \(root)/ask-answering\n"
                    + "echo '\(askAnswer)'\nsleep 60\n")
            chmod(root + "/ask.sh", 0o755)
            arguments += ["--ask-command", root + "/ask.sh"]
        }
        let pipe = try SluiceSystem.Pipe()
        // With captureLog, everything sluice-host, sluiced and the agents log goes to ROOT/host.log (see `log()`).
        var logDescriptor = FileDescriptor.standardError
        if captureLog {
            logDescriptor = FileDescriptor(
                rawValue: open(root + "/host.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644))
        }
        arguments = wrapper + arguments
        host = try ChildProcess.spawn(
            path: arguments[0], arguments: arguments, environment: ["PATH=/usr/bin:/bin", ParentWatch.askingChildren],
            descriptors: [(pipe.writeEnd, 1), (logDescriptor, 2)])
        if captureLog { logDescriptor.close() }
        pipe.writeEnd.close()
        output = pipe.readEnd
        do {
            try waitForReady(pipe.readEnd)
        } catch {
            // What the host said on its way out is the only clue: the directory goes with the fixture.
            throw HostFailure("\(error)\n\(log())")
        }
    }

    deinit {
        stop()
        directory.remove()
    }

    func stop() {
        guard let host else { return }
        host.send(signal: SIGTERM)
        _ = try? host.wait()
        output?.close()
        self.host = nil
    }

    func write(_ relative: String, _ text: String) throws {
        let path = root + "/" + relative
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }

    func service(_ domain: String, _ name: String, _ body: String) throws {
        try write("services/\(domain)/\(name)", "#!/bin/sh\n\(body)\n")
        chmod(root + "/services/\(domain)/\(name)", 0o755)
    }

    /// Runs `sluice-call` in domain `from`, feeding `input` from a file.
    func call(from: String, _ target: String, _ service: String, input: [UInt8] = []) throws -> (
        status: Int32, stdout: [UInt8], stderr: String
    ) {
        let inputPath = root + "/input-\(UInt64.random(in: 0...UInt64.max))"
        try Data(input).write(to: URL(fileURLWithPath: inputPath))
        defer { unlink(inputPath) }
        let stdin = open(inputPath, O_RDONLY | O_CLOEXEC)
        defer { close(stdin) }
        let stdout = try SluiceSystem.Pipe()
        let stderr = try SluiceSystem.Pipe()
        let path = BuiltProducts.path(of: "sluice-call")
        let child = try ChildProcess.spawn(
            path: path, arguments: [path, "--agent", run + "/\(from)/agent.sock", target, service], environment: [],
            descriptors: [(FileDescriptor(rawValue: stdin), 0), (stdout.writeEnd, 1), (stderr.writeEnd, 2)])
        stdout.writeEnd.close()
        stderr.writeEnd.close()
        let errorReader = stderr.readEnd
        let errors = ErrorCollector()
        let thread = Thread { errors.text = String(decoding: (try? errorReader.readToEnd()) ?? [], as: UTF8.self) }
        thread.start()
        let out = try stdout.readEnd.readToEnd()
        stdout.readEnd.close()
        let status = try child.wait().shellStatus
        while !errors.done { usleep(1_000) }
        stderr.readEnd.close()
        return (status, out, errors.text)
    }

    /// What sluice-host and its children logged (with `captureLog`).
    func log() -> String { (try? String(contentsOfFile: root + "/host.log", encoding: .utf8)) ?? "" }

    /// The process id of `pattern`'s process (`pgrep -f`), e.g. a domain's agent.
    func pid(of pattern: String) throws -> Int32? {
        let output = try SluiceSystem.Pipe()
        let child = try ChildProcess.spawn(
            path: "/usr/bin/pgrep", arguments: ["pgrep", "-o", "-f", "--", pattern], environment: [],
            descriptors: [(output.writeEnd, 1)])
        output.writeEnd.close()
        let text = String(decoding: try output.readEnd.readToEnd(), as: UTF8.self)
        output.readEnd.close()
        _ = try child.wait()
        return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Waits until a process matching `pattern` runs (e.g. a handler), for up to `milliseconds`; true if one does.
    /// Tests that act "once the handler runs" wait for it rather than sleep a fixed time, which a loaded machine (a
    /// sanitizer build, CI) can outlast.
    func waitForProcess(_ pattern: String, milliseconds: Int = 10_000) throws -> Bool {
        let deadline = monotonicMilliseconds() + milliseconds
        while try pid(of: pattern) == nil {
            if monotonicMilliseconds() >= deadline { return false }
            usleep(20_000)
        }
        return true
    }

    /// Whether `caller` can call vault's echo again within 15 s (tries every 200 ms): after something was killed and
    /// is being restarted.
    func callsAgain(from caller: String) -> Bool {
        let deadline = monotonicMilliseconds() + 15_000
        while (try? call(from: caller, "vault", "test.Echo", input: [1]).status) != 0 {
            if monotonicMilliseconds() >= deadline { return false }
            usleep(200_000)
        }
        return true
    }

    /// Runs `body` with each index of `0..<count`, all at once on the global queue; the group is left as each ends,
    /// so a test can wait at once or do something else first.
    static func concurrently(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) -> DispatchGroup {
        let group = DispatchGroup()
        for index in 0..<count {
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                body(index)
            }
        }
        return group
    }

    /// Sends `signal` to sluice-host itself.
    func signalHost(_ signal: Int32) { host?.send(signal: signal) }

    /// The agent of `domain`'s process id.
    func agentPID(_ domain: String) throws -> Int32? { try pid(of: "--socket \(run)/\(domain)/agent.sock") }

    /// Waits up to 15 s until the audit log holds `count` records that `matches` (calls decided, ended, refused: the
    /// daemon's own account of what happened, instead of a guess at how long it takes); true if it does.
    func waitForRecords(_ count: Int, _ matches: ([String: Any]) -> Bool) throws -> Bool {
        let deadline = monotonicMilliseconds() + 15_000
        while try audit().filter(matches).count < count {
            if monotonicMilliseconds() >= deadline { return false }
            usleep(10_000)
        }
        return true
    }

    /// Records of `service` with `event` (`decided`, `ended`, `refused`).
    static func event(_ event: String, of service: String) -> ([String: Any]) -> Bool {
        { $0["service"] as? String == service && $0["event"] as? String == event }
    }

    /// The audit log's records.
    func audit() throws -> [[String: Any]] {
        let text = (try? String(contentsOfFile: run + "/audit.log", encoding: .utf8)) ?? ""
        return try text.split(separator: "\n").map { line in
            try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        }
    }
}

/// The uid and gid `sluice-host` runs `domain` as when it runs as root (`sluice-<domain>`); nil when it does not
/// give domains users of their own.
func domainAccount(_ domain: String) -> (uid: UInt32, gid: UInt32)? {
    guard geteuid() == 0, let entry = getpwnam("sluice-" + domain) else { return nil }
    return (entry.pointee.pw_uid, entry.pointee.pw_gid)
}

/// Reads sluice-host's output until its `ready` line (30 s at most).
func waitForReady(_ output: FileDescriptor) throws {
    var text = ""
    while !text.contains("ready") {
        guard try Readiness.wait(output, timeoutMilliseconds: 30_000).first else { throw HostFailure("no ready line") }
        let bytes = try output.read(upTo: 4_096)
        if bytes.isEmpty { throw HostFailure("sluice-host exited: \(text)") }
        text += String(decoding: bytes, as: UTF8.self)
    }
}

final class ErrorCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var value = ""
    private var finished = false
    var text: String {
        get { lock.withLock { value } }
        set {
            lock.withLock {
                value = newValue
                finished = true
            }
        }
    }
    var done: Bool { lock.withLock { finished } }
}

struct HostFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
