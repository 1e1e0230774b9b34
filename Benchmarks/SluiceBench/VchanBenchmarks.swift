import Logging
import SluiceLocks
import SluiceSystem
import SluiceTesting
import SluiceVchan
import SluiceWire
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The vchan figures: throughput of 4 KiB datagrams on a 64 KiB ring, and a 1-byte ping-pong through the
/// reactor into async code, each between two processes and each next to a UNIX socketpair doing the same.
enum VchanBenchmarks {
    static let datagram = 4_096
    static let total = 1 << 30

    static func run() async throws -> [Row] {
        let directory = try TemporaryDirectory(prefix: "sluice-bench")
        defer { directory.remove() }
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let broker = try LocalVchanBroker(
            directory: directory.path, domains: [.init(id: .admin), .init(id: DomainID(rawValue: 1)!)], logger: logger)
        defer { broker.stop() }
        let rendezvous = try VchanRendezvous(path: broker.socketPath(for: .admin))

        var vchanRates: [Double] = []
        var socketRates: [Double] = []
        for round in 0..<3 {
            vchanRates.append(try vchanThroughput(rendezvous, broker, port: UInt16(700 + round)))
            socketRates.append(try socketThroughput())
        }
        let vchanRate = vchanRates.sorted()[1]
        let socketRate = socketRates.sorted()[1]
        if getenv("SLUICE_BENCH_VERBOSE") != nil {
            print(
                "vchan rounds (GB/s): \(vchanRates.map { format($0, decimals: 2) }), socketpair: \(socketRates.map { format($0, decimals: 2) })"
            )
        }

        let pingPong = try await vchanPingPong(rendezvous, broker, logger: logger)
        let socketPingPong = try socketPingPong()
        return [
            Row(
                name: "vchan throughput, 4 KiB datagrams, 64 KiB ring, 2 processes (GB/s)",
                value: format(vchanRate, decimals: 2),
                baseline: format(socketRate, decimals: 2),
                baselineName: "UNIX socketpair, 4 KiB writes, same processes",
                verdict: "goal >= 5 and >= 4x: \(format(vchanRate / socketRate, decimals: 1))x"
            ),
            Row(
                name: "vchan 1-byte ping-pong through the reactor into async (us, median)",
                value: format(pingPong, decimals: 1),
                baseline: format(socketPingPong, decimals: 1),
                baselineName: "UNIX socketpair, blocking read/write",
                verdict: "goal <= 25"
            ),
        ]
    }

    static func startProbe(_ arguments: [String], descriptors: [(parent: FileDescriptor, child: Int32)] = []) throws
        -> ChildProcess
    {
        let path = BuiltProducts.path(of: "sluice-vchan-probe")
        return try ChildProcess.spawn(
            path: path, arguments: [path] + arguments, environment: [],
            descriptors: [(FileDescriptor.standardError, 2)] + descriptors)
    }

    static func vchanThroughput(_ rendezvous: VchanRendezvous, _ broker: LocalVchanBroker, port: UInt16) throws
        -> Double
    {
        let server = try LocalVchan.server(
            rendezvous: rendezvous, peer: DomainID(rawValue: 1)!, port: VchanPort(rawValue: port)!,
            readMinimum: 4_096, writeMinimum: 65_536)
        let child = try startProbe([
            "bench-sink", "--server", "0", "--port", String(port), "--rendezvous",
            broker.socketPath(for: DomainID(rawValue: 1)!),
        ])
        while server.state == .waitingForClient {
            _ = try Readiness.wait(try server.readinessDescriptor, timeoutMilliseconds: 100)
            server.consumeEvents()
        }
        try server.send(VchanScenario.bytes(UInt64(datagram)) + VchanScenario.bytes(UInt64(total)))
        let payload = [UInt8](repeating: 0x5A, count: datagram)
        let start = Harness.now()
        try payload.withUnsafeBytes { buffer in
            for _ in 0..<(total / datagram) { _ = try server.send(buffer) }
        }
        _ = try server.receive(count: 1)
        let seconds = Double(Harness.now() - start) / 1e9
        server.close()
        _ = try child.wait()
        return Double(total) / seconds / 1e9
    }

    static func socketThroughput() throws -> Double {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else {
            throw VchanScenario.Failure("socketpair")
        }
        let mine = FileDescriptor(rawValue: fds[0])
        let theirs = FileDescriptor(rawValue: fds[1])
        let child = try startProbe(["socket-sink"], descriptors: [(theirs, 3)])
        theirs.close()
        try mine.writeAll(VchanScenario.bytes(UInt64(total)))
        let payload = [UInt8](repeating: 0x5A, count: datagram)
        let start = Harness.now()
        try payload.withUnsafeBytes { buffer in
            for _ in 0..<(total / datagram) {
                var offset = 0
                while offset < datagram {
                    let n = Glibc.write(mine.rawValue, buffer.baseAddress! + offset, datagram - offset)
                    guard n > 0 else { throw VchanScenario.Failure("write") }
                    offset += n
                }
            }
        }
        _ = try mine.read(upTo: 1)
        let seconds = Double(Harness.now() - start) / 1e9
        mine.close()
        _ = try child.wait()
        return Double(total) / seconds / 1e9
    }

    /// The bench side sends one byte, then awaits the echo, which the reactor thread hands over through a
    /// continuation: one hop into async code per round trip.
    static func vchanPingPong(_ rendezvous: VchanRendezvous, _ broker: LocalVchanBroker, logger: Logger) async throws
        -> Double
    {
        let server = try LocalVchan.server(
            rendezvous: rendezvous, peer: DomainID(rawValue: 1)!, port: VchanPort(rawValue: 720)!,
            readMinimum: 4_096, writeMinimum: 4_096)
        let child = try startProbe([
            "bench-echo", "--server", "0", "--port", "720", "--rendezvous",
            broker.socketPath(for: DomainID(rawValue: 1)!),
        ])
        while server.state == .waitingForClient {
            _ = try Readiness.wait(try server.readinessDescriptor, timeoutMilliseconds: 100)
            server.consumeEvents()
        }
        server.isBlocking = false
        let reactor = try Reactor(logger: logger)
        let waiter = Waiter()
        let busyPoll: Reactor.Probe = { server.isReadable }
        let token = try reactor.register(try server.readinessDescriptor, busyPoll: busyPoll) {
            server.consumeEvents()
            // Drain until empty: the empty check is what asks the peer to signal the next write.
            var received = 0
            while (try? server.receive(count: 1)) != nil { received += 1 }
            if received > 0 { waiter.resume() }
        }
        var samples: [Double] = []
        for round in 0..<20_000 {
            let start = Harness.now()
            await withCheckedContinuation { continuation in
                waiter.arm(continuation)
                _ = try? server.send([1])
            }
            if round >= 1_000 { samples.append(Double(Harness.now() - start) / 1_000) }
        }
        reactor.unregister(token, descriptor: try server.readinessDescriptor)
        reactor.shutdown()
        server.close()
        _ = try child.wait()
        samples.sort()
        return samples[samples.count / 2]
    }

    static func socketPingPong() throws -> Double {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else {
            throw VchanScenario.Failure("socketpair")
        }
        let mine = FileDescriptor(rawValue: fds[0])
        let theirs = FileDescriptor(rawValue: fds[1])
        let child = try startProbe(["socket-echo"], descriptors: [(theirs, 3)])
        theirs.close()
        var samples: [Double] = []
        var byte: UInt8 = 1
        for round in 0..<20_000 {
            let start = Harness.now()
            _ = Glibc.write(mine.rawValue, &byte, 1)
            _ = Glibc.read(mine.rawValue, &byte, 1)
            if round >= 1_000 { samples.append(Double(Harness.now() - start) / 1_000) }
        }
        mine.close()
        _ = try child.wait()
        samples.sort()
        return samples[samples.count / 2]
    }
}

/// One pending continuation, resumed from the reactor thread.
final class Waiter: Sendable {
    private let pending = LockedValue<CheckedContinuation<Void, Never>?>(nil)
    private let early = Atomic<Bool>(false)

    func arm(_ continuation: CheckedContinuation<Void, Never>) {
        let resumeNow = pending.withLock { slot -> Bool in
            if early.exchange(false, ordering: .acquiringAndReleasing) { return true }
            slot = continuation
            return false
        }
        if resumeNow { continuation.resume() }
    }

    func resume() {
        let continuation = pending.withLock { slot -> CheckedContinuation<Void, Never>? in
            defer { slot = nil }
            if slot == nil { early.store(true, ordering: .releasing) }
            return slot
        }
        continuation?.resume()
    }
}
