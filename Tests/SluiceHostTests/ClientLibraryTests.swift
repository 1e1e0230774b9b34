import Foundation
import SluiceClient
import SluiceSystem
import SluiceTesting
import SluiceWire
import Testing

struct Greeting: Codable, Equatable {
    var name: String
    var count: Int
}

@Suite("The Swift client library", .serialized)
struct ClientLibraryTests {
    func client(_ host: HostFixture, from domain: String) -> SluiceClient {
        SluiceClient(
            endpoints: .init(
                agentSocket: host.run + "/\(domain)/agent.sock", rendezvousPath: host.run + "/\(domain)/vchan.sock"))
    }

    @Test("a typed call sends one Encodable request and decodes one Decodable reply")
    func typed() async throws {
        let host = try HostFixture()
        let reply = try await client(host, from: "work").call(
            "test.Echo", on: "vault", request: Greeting(name: "vault", count: 3), as: Greeting.self)
        #expect(reply == Greeting(name: "vault", count: 3))
        do {
            _ = try await client(host, from: "untrusted").call(
                "test.Echo", on: "work", request: Greeting(name: "x", count: 1), as: Greeting.self)
            Issue.record("a refused call returned")
        } catch let error as SluiceError {
            #expect(error.code == .refusedByPolicy)
        }
    }

    @Test("run collects stdout, stderr and the exit code")
    func collected() async throws {
        let host = try HostFixture()
        let result = try await client(host, from: "work").run(
            try ServiceCall(parsing: "test.Echo+arg"), on: try TargetName("vault"), input: [1, 2])
        #expect(result.exitCode == 0)
        #expect(result.standardOutput == [1, 2])
        #expect(String(decoding: result.standardError, as: UTF8.self) == "argument=arg source=work\n")
    }

    @Test("cancelling the task stops the remote handler")
    func cancellation() async throws {
        let host = try HostFixture()
        let library = client(host, from: "work")
        let task = Task { try await library.run(try ServiceCall(parsing: "test.Sleep"), on: try TargetName("vault")) }
        try await Task.sleep(nanoseconds: 700_000_000)
        let start = monotonicMilliseconds()
        task.cancel()
        let result = try await task.value
        #expect(result.exitCode == 143)
        #expect(monotonicMilliseconds() - start < 3_000)
    }
}
