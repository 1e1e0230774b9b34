import FileCopyArchive
import Foundation
import SluiceSystem
import SluiceTesting
import Testing

/// Examples/ as a newcomer would deploy them: the shipped Policies/, the demo inventory, and each example's service
/// installed in a domain's service directory, through a real sluice-host.
final class ExamplesHost: @unchecked Sendable {
    let directory: TemporaryDirectory
    let repository: String
    var run: String { directory.path + "/run" }
    private var host: ChildProcess?
    private var socketDaemon: ChildProcess?

    init() throws {
        directory = try TemporaryDirectory(prefix: "sluice-examples")
        repository =
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let services = directory.path + "/services"
        let manager = FileManager.default
        for domain in ["dom0", "work", "vault", "untrusted", "default-dvm"] {
            try manager.createDirectory(atPath: services + "/" + domain, withIntermediateDirectories: true)
        }
        let links = [
            ("vault/example.Echo", repository + "/Examples/Echo/example.Echo"),
            ("vault/example.SwiftEcho", BuiltProducts.path(of: "sluice-example-echo")),
            ("vault/example.GetSecret", BuiltProducts.path(of: "sluice-example-vault")),
            ("default-dvm/example.OpenURL", repository + "/Examples/OpenInDisposable/example.OpenURL"),
            ("vault/example.FileCopy", BuiltProducts.path(of: "sluice-example-file-receive")),
        ]
        for (name, target) in links {
            try manager.createSymbolicLink(atPath: services + "/" + name, withDestinationPath: target)
        }
        try "incoming \(directory.path)/incoming\nmax-bytes 100000\nmax-files 20\n".write(
            toFile: services + "/vault/example.FileCopy.conf", atomically: false, encoding: .utf8)
        try #"{"api-token": "t0k3n", "signing-key": "k3y"}"#.write(
            toFile: services + "/vault/example.GetSecret.secrets.json", atomically: false, encoding: .utf8)
        let daemonPath = BuiltProducts.path(of: "sluice-example-socket-echo")
        let ready = try SluiceSystem.Pipe()
        socketDaemon = try ChildProcess.spawn(
            path: daemonPath, arguments: [daemonPath, services + "/vault/example.SocketEcho"], environment: [],
            descriptors: [(ready.writeEnd, 1), (.standardError, 2)])
        ready.writeEnd.close()
        _ = try Readiness.wait(ready.readEnd, timeoutMilliseconds: 10_000)
        ready.readEnd.close()
        // The daemon runs as this test's user (root); vault's agent, which runs as vault's own user when the host is
        // root, must be able to connect (a UNIX socket needs write permission).
        chmod(services + "/vault/example.SocketEcho", 0o666)
        let pipe = try SluiceSystem.Pipe()
        let hostPath = BuiltProducts.path(of: "sluice-host")
        host = try ChildProcess.spawn(
            path: hostPath,
            arguments: [
                hostPath, "--run-dir", run, "--inventory", repository + "/Examples/demo/inventory.json",
                "--policy-dir", repository + "/Policies", "--services-root", services, "--ask-command",
                repository + "/Examples/demo/ask-yes.sh",
            ], environment: ["PATH=/usr/bin:/bin", ParentWatch.askingChildren],
            descriptors: [(pipe.writeEnd, 1), (.standardError, 2)])
        pipe.writeEnd.close()
        try waitForReady(pipe.readEnd)
        pipe.readEnd.close()
        // The file-copy receiver runs in vault: its incoming directory is vault's user's (when domains have users).
        let incoming = directory.path + "/incoming"
        try FileManager.default.createDirectory(atPath: incoming, withIntermediateDirectories: true)
        if let account = domainAccount("vault") { chown(incoming, account.uid, account.gid) }
    }

    deinit {
        host?.send(signal: SIGTERM)
        _ = try? host?.wait()
        socketDaemon?.send(signal: SIGKILL)
        _ = try? socketDaemon?.wait()
        directory.remove()
    }

    /// Runs `program` with `arguments` as a program of domain `from` would: its agent socket in the environment.
    func run(from: String, _ program: String, _ arguments: [String], input: String = "") throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        try run(from: from, program, arguments, bytes: Array(input.utf8))
    }

    func run(from: String, _ program: String, _ arguments: [String], bytes input: [UInt8]) throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        let inputPath = directory.path + "/input-\(UInt64.random(in: 0...UInt64.max))"
        try Data(input).write(to: URL(fileURLWithPath: inputPath))
        let stdin = open(inputPath, O_RDONLY | O_CLOEXEC)
        defer { close(stdin) }
        let out = directory.path + "/out-\(UInt64.random(in: 0...UInt64.max))"
        let err = out + ".err"
        let outFile = open(out, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        let errFile = open(err, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        let binaries = URL(fileURLWithPath: BuiltProducts.path(of: "sluice-call")).deletingLastPathComponent().path
        let child = try ChildProcess.spawn(
            path: program, arguments: [program] + arguments,
            environment: ["PATH=\(binaries):/usr/bin:/bin", "SLUICE_AGENT_SOCKET=\(run)/\(from)/agent.sock"],
            descriptors: [
                (FileDescriptor(rawValue: stdin), 0), (FileDescriptor(rawValue: outFile), 1),
                (FileDescriptor(rawValue: errFile), 2),
            ])
        close(outFile)
        close(errFile)
        let status = try child.wait().shellStatus
        return (
            status, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
            (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        )
    }
}

@Suite("Examples/ through sluice-host with the shipped Policies/", .serialized)
struct ExamplesTests {
    @Test("echo as a shell script, a Swift program and a socket daemon")
    func echo() throws {
        let host = try ExamplesHost()
        let call = BuiltProducts.path(of: "sluice-call")
        for service in ["example.Echo", "example.SwiftEcho", "example.SocketEcho"] {
            let result = try host.run(from: "work", call, ["vault", service], input: "hello \(service)\n")
            #expect(result.status == 0, "\(service): \(result.stderr)")
            #expect(result.stdout == "hello \(service)\n", "\(service)")
        }
        #expect(try host.run(from: "work", call, ["vault", "example.SwiftEcho"]).stderr == "echo for work\n")
    }

    @Test("split secrets: a typed Swift client gets what the policy allows, asks for the key, and is refused the rest")
    func splitSecrets() throws {
        let host = try ExamplesHost()
        let client = BuiltProducts.path(of: "sluice-example-secret")
        let token = try host.run(from: "work", client, ["api-token", "deploy"])
        #expect(token.status == 0, "\(token.stderr)")
        #expect(token.stdout == "t0k3n\n")
        let key = try host.run(from: "work", client, ["signing-key", "release"])
        #expect(key.status == 0, "\(key.stderr)")
        #expect(key.stdout == "k3y\n")
        let refused = try host.run(from: "untrusted", client, ["api-token"])
        #expect(refused.status == 126)
        #expect(refused.stdout.isEmpty)
        let unknown = try host.run(from: "work", client, ["other"])
        #expect(unknown.status == 126, "no rule allows it: \(unknown.stderr)")
    }

    @Test("open in a disposable: the URL is handled in a fresh dispNNNN, not in the caller")
    func openInDisposable() throws {
        let host = try ExamplesHost()
        let script = host.repository + "/Examples/clients/open-in-disposable.sh"
        let opened = try host.run(from: "work", script, ["https://example.org/a?b=c"])
        #expect(opened.status == 0, "\(opened.stderr)")
        #expect(opened.stdout.hasPrefix("disp"), "\(opened.stdout)")
        #expect(opened.stdout.hasSuffix(" would open https://example.org/a?b=c for work\n"), "\(opened.stdout)")
        let rejected = try host.run(from: "work", script, ["file:///etc/shadow"])
        #expect(rejected.status == 1)
        #expect(rejected.stderr.contains("only http and https"))
    }

    @Test("file copy: a tree arrives in ~/Incoming/<source>/ with its files, directories and inner symlinks")
    func fileCopy() throws {
        let host = try ExamplesHost()
        let tree = host.directory.path + "/outgoing/report"
        try FileManager.default.createDirectory(atPath: tree + "/sub", withIntermediateDirectories: true)
        try "summary\n".write(toFile: tree + "/a.txt", atomically: false, encoding: .utf8)
        var pattern = Pattern(seed: 21)
        let blob = pattern.bytes(50_000)
        try Data(blob).write(to: URL(fileURLWithPath: tree + "/sub/b.bin"))
        try FileManager.default.createSymbolicLink(atPath: tree + "/latest", withDestinationPath: "sub/b.bin")
        let sent = try host.run(
            from: "work", BuiltProducts.path(of: "sluice-example-file-send"), ["vault", tree])
        #expect(sent.status == 0, "\(sent.stderr)")
        let received = host.directory.path + "/incoming/work/report"
        #expect(try String(contentsOfFile: received + "/a.txt", encoding: .utf8) == "summary\n")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: received + "/sub/b.bin"))) == blob)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: received + "/latest") == "sub/b.bin")
    }

    @Test("the file-copy receiver refuses each hostile stream and keeps nothing of it")
    func fileCopyHostile() throws {
        let host = try ExamplesHost()
        let call = BuiltProducts.path(of: "sluice-call")
        func file(_ name: String, _ data: [UInt8]) -> [UInt8] {
            FileCopyArchive.fileHeader(name, mode: 0o644, size: UInt64(data.count)) + data
        }
        let start = FileCopyArchive.magic + FileCopyArchive.directoryRecord("x", mode: 0o755)
        let end = [FileCopyArchive.end]
        let cases: [(String, [UInt8])] = [
            ("a name with ..", start + file("x/../../evil", [1]) + end),
            ("an absolute name", FileCopyArchive.magic + file("/tmp/evil", [1]) + end),
            ("a symlink out of the tree", start + FileCopyArchive.symlinkRecord("x/l", target: "../../etc") + end),
            ("an absolute symlink", start + FileCopyArchive.symlinkRecord("x/l", target: "/etc/passwd") + end),
            ("a device", start + [UInt8(ascii: "c")] + FileCopyArchive.little(UInt16(3)) + Array("x/d".utf8) + end),
            ("a control character", start + file("x/a\u{1B}[31m", [1]) + end),
            ("a missing parent", FileCopyArchive.magic + file("nodir/f", [1]) + end),
            ("too many files", start + (0..<25).flatMap { file("x/f\($0)", [1]) } + end),
            ("too many bytes", start + file("x/big", [UInt8](repeating: 7, count: 150_000)) + end),
            (
                "a cut-off stream",
                start + file("x/kept", [1, 2, 3]) + FileCopyArchive.fileHeader("x/cut", mode: 0o644, size: 1_000) + [
                    1, 2,
                ]
            ),
            ("no end record", start + file("x/kept", [1, 2, 3])),
            ("not a stream", Array("hello".utf8)),
        ]
        let incoming = host.directory.path + "/incoming/work"
        for (name, stream) in cases {
            let result = try host.run(from: "work", call, ["vault", "example.FileCopy"], bytes: stream)
            #expect(result.status == 1, "\(name): exit \(result.status), \(result.stderr)")
            #expect(result.stderr.contains("refused"), "\(name): \(result.stderr)")
            let left = (try? FileManager.default.contentsOfDirectory(atPath: incoming)) ?? []
            #expect(left.isEmpty, "\(name) left \(left)")
        }
        #expect(!FileManager.default.fileExists(atPath: "/tmp/evil"))
    }
}
