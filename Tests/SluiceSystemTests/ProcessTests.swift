import SluiceSystem
import SluiceTesting
import SluiceWire
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Processes and descriptors", .serialized)
struct ProcessTests {
    @Test("exit codes and signals map to the shell convention")
    func terminations() throws {
        let exited = try ChildProcess.spawn(
            path: "/bin/sh", arguments: ["sh", "-c", "exit 7"], environment: [], descriptors: [])
        #expect(try exited.wait() == .exited(7))
        let killed = try ChildProcess.spawn(
            path: "/bin/sh", arguments: ["sh", "-c", "kill -9 $$"], environment: [], descriptors: [])
        let termination = try killed.wait()
        #expect(termination == .signaled(9))
        #expect(termination.shellStatus == 137)
    }

    @Test("a spawn of a missing program fails with a system-call error, not a trap")
    func missingProgram() {
        do {
            _ = try ChildProcess.spawn(path: "/nonexistent/program", arguments: ["x"], environment: [], descriptors: [])
            Issue.record("spawned a missing program")
        } catch {
            #expect(error.code == .systemCallFailed)
        }
    }

    @Test("only mapped descriptors reach the child")
    func noDescriptorLeaks() throws {
        // An inheritable descriptor (dup clears close-on-exec) that the mapping does not name must not leak.
        let pipe = try Pipe()
        defer {
            pipe.readEnd.close()
            pipe.writeEnd.close()
        }
        let leaked = dup(pipe.writeEnd.rawValue)
        defer { close(leaked) }
        #expect(leaked > 2)
        let script = "test -e /proc/$$/fd/\(leaked) && exit 10; test -e /proc/$$/fd/5 || exit 11; exit 0"
        let child = try ChildProcess.spawn(
            path: "/bin/sh",
            arguments: ["sh", "-c", script],
            environment: [],
            descriptors: [(pipe.writeEnd, 5)]
        )
        #expect(try child.wait() == .exited(0))
    }

    @Test("a datagram socket pair carries one frame per datagram and passes descriptors")
    func datagrams() throws {
        let (left, right) = try DatagramSocket.pair()
        defer {
            left.descriptor.close()
            right.descriptor.close()
        }
        let pipe = try Pipe()
        let frame = try FrameEncoder(direction: .agentToDaemon).encode(.ping(42))
        try left.send(frame, descriptors: [pipe.readEnd])
        pipe.readEnd.close()
        let received = try #require(try right.receive(maxBytes: 1_024))
        #expect(try FrameDecoder(direction: .agentToDaemon).decode(datagram: received.bytes) == .ping(42))
        #expect(received.descriptors.count == 1)
        try pipe.writeEnd.writeAll(Array("through".utf8))
        pipe.writeEnd.close()
        #expect(try received.descriptors[0].readToEnd() == Array("through".utf8))
        received.descriptors[0].close()
    }

    @Test("a datagram longer than the reader's limit is an error, not a truncated frame")
    func oversizedDatagram() throws {
        let (left, right) = try DatagramSocket.pair()
        defer {
            left.descriptor.close()
            right.descriptor.close()
        }
        try left.send(Array(repeating: 1, count: 101))
        do {
            _ = try right.receive(maxBytes: 100)
            Issue.record("accepted an oversized datagram")
        } catch {
            #expect(error.code == .frameTooLarge)
        }
    }
}

@Suite("frame-demo: two real processes exchange frames", .serialized)
struct FrameDemoTests {
    @Test("the demo's service side answers and rejects hostile frames with their codes")
    func demo() throws {
        let output = try Pipe()
        let child = try ChildProcess.spawn(
            path: BuiltProducts.path(of: "frame-demo"),
            arguments: ["frame-demo"],
            environment: [],
            descriptors: [(output.writeEnd, 1), (output.writeEnd, 2)]
        )
        output.writeEnd.close()
        let text = String(decoding: try output.readEnd.readToEnd(), as: UTF8.self)
        output.readEnd.close()
        #expect(try child.wait() == .exited(0), "\(text)")
        #expect(text.contains("caller: stdout: HELLO FROM THE CALLER"))
        #expect(text.contains("caller: exit status 0 (exited)"))
        for code in [
            "error 111 (duplicate-key)", "error 120 (wrong-direction)", "error 101 (header-too-large)",
            "error 112 (invalid-utf8)",
        ] {
            #expect(text.contains("the service answered \(code)"), "\(code)")
        }
    }

    @Test("a service process given a raw datagram of garbage answers with an error frame and exits")
    func garbageToService() throws {
        let (mine, theirs) = try DatagramSocket.pair()
        let child = try ChildProcess.spawn(
            path: BuiltProducts.path(of: "frame-demo"),
            arguments: ["frame-demo", "--service"],
            environment: [],
            descriptors: [(theirs.descriptor, 3)]
        )
        theirs.descriptor.close()
        try mine.send(Array("GET / HTTP/1.1\r\n\r\n".utf8))
        let reply = try #require(try mine.receive(maxBytes: 4_096))
        guard case .error(let report) = try FrameDecoder(direction: .serviceToCaller).decode(datagram: reply.bytes)
        else {
            Issue.record("no error frame")
            return
        }
        #expect(report.code == .headerTooLarge)
        mine.descriptor.close()
        #expect(try child.wait() == .exited(1))
    }
}
