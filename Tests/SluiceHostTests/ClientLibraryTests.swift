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
        // Cancel once the handler runs (a fixed delay made this test fail on a loaded machine: a call cancelled
        // before it is connected ends with 125, which is right too, but not what this test is about).
        let deadline = monotonicMilliseconds() + 10_000
        while try host.pid(of: "sleep 30") == nil && monotonicMilliseconds() < deadline {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        let start = monotonicMilliseconds()
        task.cancel()
        let result = try await task.value
        #expect(result.exitCode == 143, "stderr: \(String(decoding: result.standardError, as: UTF8.self))")
        #expect(monotonicMilliseconds() - start < 3_000)
    }

    @Test("a streaming call hands stdout back while stdin is still open")
    func interactive() async throws {
        let host = try HostFixture()
        let call = try await client(host, from: "work").call(target: "vault", service: "test.Echo", argument: "live")
        var output = call.standardOutput.makeAsyncIterator()
        for line in ["ping\n", "pong\n"] {
            try await call.standardInput.write(Array(line.utf8))
            #expect(await output.next() == Array(line.utf8))
        }
        call.standardInput.finish()
        #expect(await output.next() == nil)
        #expect(String(decoding: await call.standardError.collect(), as: UTF8.self) == "argument=live source=work\n")
        #expect(await call.exitStatus == 0)
    }

    @Test("30 MB stream through the library both ways, with backpressure, and arrive intact")
    func largeStream() async throws {
        let host = try HostFixture()
        let call = try await client(host, from: "work").call(target: "vault", service: "test.Echo")
        var pattern = Pattern(seed: 5)
        let block = pattern.bytes(1_000_003)
        var sent = Checksum()
        let writer = Task {
            for _ in 0..<30 {
                try await call.standardInput.write(block)
            }
            call.standardInput.finish()
        }
        for _ in 0..<30 { sent.add(block) }
        var received = Checksum()
        var count = 0
        for await chunk in call.standardOutput {
            received.add(chunk)
            count += chunk.count
        }
        try await writer.value
        call.standardError.discard()
        #expect(count == 30 * block.count)
        #expect(received.value == sent.value)
        #expect(await call.exitStatus == 0)
    }

    @Test("a refused call throws; cancelling the task that waits for the status stops the handler")
    func refusedAndCancelled() async throws {
        let host = try HostFixture()
        await #expect(throws: SluiceError.self) {
            _ = try await client(host, from: "untrusted").call(target: "work", service: "test.Echo")
        }
        let call = try await client(host, from: "work").call(target: "vault", service: "test.Sleep")
        let waiter = Task { await call.exitStatus }
        // Cancelled once the handler runs, as in `cancellation` above.
        let deadline = monotonicMilliseconds() + 10_000
        while try host.pid(of: "sleep 30") == nil && monotonicMilliseconds() < deadline {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        waiter.cancel()
        #expect(await waiter.value == 143)
        #expect(await call.exitStatus == 143)
    }
}
