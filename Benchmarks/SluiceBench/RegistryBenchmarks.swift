import Foundation
import Logging
import SluiceRegistry
import SluiceSystem
import SluiceTesting
import SluiceWire

/// The registry's figures: spawning `/bin/true` through lookup, configuration and the pump, bytes through a
/// `cat` handler, and a socket service round trip, each next to the same work without the registry.
enum RegistryBenchmarks {
    static func run() throws -> [Row] {
        let directory = try TemporaryDirectory(prefix: "sluice-registry-bench")
        defer { directory.remove() }
        let services = directory.path + "/services"
        try FileManager.default.createDirectory(atPath: services, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: services + "/bench.True", withDestinationPath: "/bin/true")
        try FileManager.default.createSymbolicLink(atPath: services + "/bench.Cat", withDestinationPath: "/bin/cat")
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let launcher = HandlerLauncher(
            registry: ServiceRegistry(serviceDirectories: [services], configDirectories: [directory.path + "/none"]),
            logger: logger)
        let source = try DomainName("work")

        // Spawn, run and reap /bin/true.
        let trueCall = CallContext(call: try ServiceCall(parsing: "bench.True"), source: source)
        var registrySamples: [Double] = []
        var spawnSamples: [Double] = []
        for round in 0..<600 {
            var start = Harness.now()
            let handler = try launcher.start(trueCall)
            let result = try HandlerPump().run(handler, input: nil, output: CollectedOutput())
            precondition(result.status.code == 0)
            if round >= 100 { registrySamples.append(Double(Harness.now() - start) / 1e6) }
            start = Harness.now()
            let child = try ChildProcess.spawn(path: "/bin/true", arguments: ["true"], environment: [], descriptors: [])
            _ = try child.wait()
            if round >= 100 { spawnSamples.append(Double(Harness.now() - start) / 1e6) }
        }

        // 1 GiB through cat.
        let total = 1 << 30
        let catCall = CallContext(call: try ServiceCall(parsing: "bench.Cat"), source: source)
        var catRates: [Double] = []
        var baselineRates: [Double] = []
        for _ in 0..<3 {
            let handler = try launcher.start(catCall)
            let sink = CountingOutput()
            let start = Harness.now()
            let result = try HandlerPump().run(handler, input: PatternInput(total: total), output: sink)
            let seconds = Double(Harness.now() - start) / 1e9
            precondition(result.status.code == 0 && sink.count == total, "cat moved \(sink.count) bytes")
            catRates.append(Double(total) / seconds / 1e9)
            baselineRates.append(try plainCat(total: total))
        }

        // A socket service round trip.
        let server = try EchoServer(path: services + "/bench.Socket")
        defer { server.stop() }
        let socketCall = CallContext(call: try ServiceCall(parsing: "bench.Socket"), source: source)
        var socketSamples: [Double] = []
        var rawSamples: [Double] = []
        for round in 0..<3_000 {
            var start = Harness.now()
            let handler = try launcher.start(socketCall)
            try handler.input!.writeAll([1])
            while true {
                let ready = try Readiness.wait(handler.output!, timeoutMilliseconds: 1_000)
                if ready.first, let byte = try? handler.output!.read(upTo: 1), byte == [1] { break }
            }
            handler.closeInput()
            handler.closeOutput()
            if round >= 300 { socketSamples.append(Double(Harness.now() - start) / 1e3) }
            start = Harness.now()
            let raw = try UnixSocket.connect(to: services + "/bench.Socket", kind: .stream)
            try raw.writeAll([0, 1])
            _ = try raw.read(upTo: 1)
            raw.close()
            if round >= 300 { rawSamples.append(Double(Harness.now() - start) / 1e3) }
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        return [
            Row(
                name: "spawn, run and reap /bin/true through the registry (ms, median)",
                value: format(median(registrySamples), decimals: 3),
                baseline: format(median(spawnSamples), decimals: 3),
                baselineName: "plain posix_spawn + waitpid", verdict: "goal <= 1.0"),
            Row(
                name: "bytes through a cat handler, stdin to stdout (GB/s, median of 3)",
                value: format(catRates.sorted()[1], decimals: 2),
                baseline: format(baselineRates.sorted()[1], decimals: 2),
                baselineName: "cat on plain pipes, a writer thread", verdict: "goal >= 1.5"),
            Row(
                name: "socket service round trip through the registry (us, median)",
                value: format(median(socketSamples), decimals: 1), baseline: format(median(rawSamples), decimals: 1),
                baselineName: "raw connect + write + read + close", verdict: "goal <= 100"),
        ]
    }

    /// posix_spawn'd cat with plain blocking pipes: a thread writes, this thread reads.
    static func plainCat(total: Int) throws -> Double {
        let input = try SluiceSystem.Pipe()
        let output = try SluiceSystem.Pipe()
        let child = try ChildProcess.spawn(
            path: "/bin/cat", arguments: ["cat"], environment: [],
            descriptors: [(input.readEnd, 0), (output.writeEnd, 1)])
        input.readEnd.close()
        output.writeEnd.close()
        let writer = input.writeEnd
        let thread = Thread {
            let chunk = [UInt8](repeating: 0x5A, count: 256 * 1_024)
            var sent = 0
            while sent < total {
                try? writer.writeAll(chunk)
                sent += chunk.count
            }
            writer.close()
        }
        let start = Harness.now()
        thread.start()
        var buffer = [UInt8](repeating: 0, count: 256 * 1_024)
        var received = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(output.readEnd.rawValue, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            received += n
        }
        let seconds = Double(Harness.now() - start) / 1e9
        output.readEnd.close()
        _ = try child.wait()
        precondition(received == total)
        return Double(total) / seconds / 1e9
    }
}

/// Input that produces `total` bytes without copying (the pump's buffer content is whatever it was).
final class PatternInput: HandlerInput {
    private var remaining: Int
    init(total: Int) { remaining = total }
    var readiness: FileDescriptor? { nil }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(SluiceError) -> Int? {
        let count = min(buffer.count, remaining)
        remaining -= count
        return count
    }
}

final class CountingOutput: HandlerOutput {
    private(set) var count = 0
    func write(_ stream: StreamID, _ bytes: UnsafeRawBufferPointer) throws(SluiceError) { count += bytes.count }
    func finish(_ stream: StreamID) throws(SluiceError) {}
}

/// A socket service that skips the descriptor header up to its NUL and echoes one byte.
final class EchoServer: @unchecked Sendable {
    let listener: FileDescriptor
    init(path: String) throws {
        listener = try UnixSocket.listen(at: path, kind: .stream, mode: 0o600)
        let listener = listener
        Thread {
            while let connection = try? UnixSocket.accept(listener) {
                var sawHeader = false
                while let chunk = try? connection.read(upTo: 256), !chunk.isEmpty {
                    var body = chunk[...]
                    if !sawHeader, let nul = body.firstIndex(of: 0) {
                        sawHeader = true
                        body = body[(nul + 1)...]
                    }
                    if sawHeader, !body.isEmpty {
                        try? connection.writeAll(body)
                        break
                    }
                }
                connection.close()
            }
        }.start()
    }

    func stop() { listener.close() }
}
