import Foundation
import SluiceRegistry
import SluiceSystem
import SluiceTesting
import SluiceWire
import Testing

/// A long-running socket service: accepts one connection at a time, records the descriptor header up to its NUL
/// (when `expectHeader`), then echoes everything back until the caller shuts its side.
final class EchoSocketService: @unchecked Sendable {
    let listener: FileDescriptor
    private let lock = NSLock()
    private var headers: [String] = []
    let expectHeader: Bool

    init(path: String, expectHeader: Bool = true) throws {
        listener = try UnixSocket.listen(at: path, kind: .stream, mode: 0o666)
        self.expectHeader = expectHeader
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    var receivedHeaders: [String] { lock.withLock { headers } }

    private func serve() {
        while let connection = try? UnixSocket.accept(listener) {
            var header: [UInt8] = []
            if expectHeader {
                while let chunk = try? connection.read(upTo: 1), let byte = chunk.first, byte != 0 {
                    header.append(byte)
                }
            }
            lock.withLock { headers.append(String(decoding: header, as: UTF8.self)) }
            while let chunk = try? connection.read(upTo: 65_536), !chunk.isEmpty { try? connection.writeAll(chunk) }
            connection.close()
        }
    }

    func stop() { listener.close() }
}

@Suite("Socket services", .serialized)
struct SocketServiceTests {
    @Test("a socket service gets the descriptor header, then the caller's bytes, and its replies come back")
    func echo() throws {
        let fixture = try RegistryFixture()
        defer { fixture.directory.remove() }
        let service = try EchoSocketService(path: fixture.system + "/test.Sock")
        defer { service.stop() }
        let (result, output) = try fixture.run("test.Sock+arg", source: "work", input: Array("hello, socket".utf8))
        #expect(String(decoding: output.standardOutput, as: UTF8.self) == "hello, socket")
        #expect(result.status == ExitStatus(code: 0, reason: .exited))
        #expect(output.finished.contains(.stderr))
        #expect(service.receivedHeaders == ["test.Sock+arg work"])
    }

    @Test("the admin domain's descriptor names the requested target's type; skip-service-descriptor sends none")
    func descriptors() throws {
        let fixture = try RegistryFixture()
        defer { fixture.directory.remove() }
        let service = try EchoSocketService(path: fixture.system + "/test.Sock")
        defer { service.stop() }
        _ = try fixture.run("test.Sock", source: "vault", input: [1]) {
            $0.inAdminDomain = true
            $0.requestedTarget = try! TargetName("@adminvm")
        }
        #expect(service.receivedHeaders == ["test.Sock+ vault keyword adminvm"])
        let quiet = try EchoSocketService(path: fixture.system + "/test.Quiet", expectHeader: false)
        defer { quiet.stop() }
        try fixture.configure("test.Quiet", "skip-service-descriptor = true\n")
        let (_, output) = try fixture.run("test.Quiet", input: Array("raw".utf8))
        #expect(String(decoding: output.standardOutput, as: UTF8.self) == "raw")
    }

    @Test("a symlink to a socket is a socket service")
    func symlink() throws {
        let fixture = try RegistryFixture()
        defer { fixture.directory.remove() }
        let service = try EchoSocketService(path: fixture.directory.path + "/daemon.sock")
        defer { service.stop() }
        try FileManager.default.createSymbolicLink(
            atPath: fixture.runtime + "/test.Link", withDestinationPath: fixture.directory.path + "/daemon.sock")
        #expect(
            try fixture.registry.lookup(try ServiceCall(parsing: "test.Link"))
                == .socket(path: fixture.runtime + "/test.Link"))
        #expect(try fixture.run("test.Link", input: [7, 8]).output.standardOutput == [7, 8])
    }
}
