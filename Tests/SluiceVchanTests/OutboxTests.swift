import Foundation
import Logging
import SluiceSystem
import SluiceTesting
import SluiceVchan
import SluiceWire
import Testing

/// The frame channel's outbox: every frame leaves in the order it was posted, whatever thread posted it and however
/// full the ring was; a peer that does not read is bounded.
@Suite("A frame channel's outbox keeps order and bounds", .serialized)
struct OutboxTests {
    /// A server channel in this process (daemon side) and the raw client end (agent side), on a 4 KiB ring.
    struct Pair {
        let harness: VchanHarness
        let reactor: Reactor
        let channel: VchanFrameChannel
        let peer: VchanFrameLink

        init(port: UInt16) throws {
            harness = try VchanHarness()
            let server = try harness.server(peer: 0, port: port, read: 4_096, write: 4_096)
            let client = try LocalVchan.client(
                rendezvous: harness.rendezvous, server: .admin, port: VchanPort(rawValue: port)!)
            try waitForClient(server)
            var logger = Logger(label: "test.outbox")
            logger.logLevel = .critical
            reactor = try Reactor(logger: logger)
            channel = try VchanFrameChannel(vchan: server, reactor: reactor, receiving: .agentToDaemon, logger: logger)
            peer = VchanFrameLink(vchan: client, receiving: .daemonToAgent)
        }

        func finish() {
            channel.close()
            peer.vchan.close()
            reactor.shutdown()
        }
    }

    @Test("frames posted while the ring is full leave after the earlier ones, in order")
    func orderKeptWhenFull() throws {
        let pair = try Pair(port: 620)
        defer { pair.finish() }
        // 300 pings of ~40 bytes do not fit a 4 KiB ring: most wait in the outbox, none blocks.
        var queued = 0
        for nonce in 0..<300 where !(try pair.channel.post(.ping(UInt64(nonce))).sentNow) { queued += 1 }
        #expect(queued > 0)
        // A droppable message does not jump the queue.
        #expect(try pair.channel.trySend(.ping(999)) == false)
        var received: [UInt64] = []
        while received.count < 300 {
            guard case .ping(let nonce)? = try pair.peer.receive(timeoutMilliseconds: 5_000) else { break }
            received.append(nonce)
        }
        #expect(received == (0..<300).map(UInt64.init))
        #expect(pair.channel.oldestWaiting == nil)
    }

    @Test("frames posted from many threads at once each keep their thread's order")
    func orderAcrossThreads() throws {
        let pair = try Pair(port: 621)
        defer { pair.finish() }
        let threads = 4
        let each = 200
        let group = DispatchGroupBox()
        let channel = pair.channel
        for thread in 0..<threads {
            group.run {
                for index in 0..<each { _ = try? channel.post(.ping(UInt64(thread * 10_000 + index))) }
            }
        }
        var received: [UInt64] = []
        while received.count < threads * each {
            guard case .ping(let nonce)? = try pair.peer.receive(timeoutMilliseconds: 5_000) else { break }
            received.append(nonce)
        }
        group.wait()
        #expect(received.count == threads * each)
        for thread in 0..<threads {
            let mine = received.filter { $0 / 10_000 == UInt64(thread) }
            #expect(mine == (0..<each).map { UInt64(thread * 10_000 + $0) })
        }
    }

    @Test("a wait for a frame ends when the peer reads it, or when its time runs out")
    func waitUntilSent() async throws {
        let pair = try Pair(port: 622)
        defer { pair.finish() }
        var last: UInt64 = 0
        for nonce in 0..<200 { last = try pair.channel.post(.ping(UInt64(nonce))).sequence }
        #expect(await pair.channel.waitUntilSent(last, timeoutNanoseconds: 20_000_000) == false)
        let waiting = try #require(pair.channel.oldestWaiting)
        #expect(waiting.sequence <= last)
        let peer = pair.peer
        let reader = Task.detached {
            for _ in 0..<200 { _ = try peer.receive(timeoutMilliseconds: 5_000) }
        }
        #expect(await pair.channel.waitUntilSent(last, timeoutNanoseconds: 10_000_000_000))
        try await reader.value
    }

    @Test("a peer that lets the outbox fill is cut off with outbox-full")
    func outboxFull() async throws {
        let pair = try Pair(port: 623)
        defer { pair.finish() }
        let big = Message.refused(
            Refusal(id: RequestID(rawValue: 1)!, code: .cancelled, message: String(repeating: "x", count: 1_000)))
        var failure: SluiceError?
        for _ in 0..<10_000 {
            do {
                try pair.channel.post(big)
            } catch {
                failure = error
                break
            }
        }
        #expect(failure?.code == .outboxFull)
        do {
            while true { _ = try await pair.channel.receive() }
        } catch {
            #expect(error.code == .outboxFull)
        }
        #expect(throws: SluiceError.self) { try pair.channel.post(.ping(1)) }
    }
}

/// Runs blocks on their own threads and waits for all of them.
final class DispatchGroupBox: @unchecked Sendable {
    private let group = DispatchGroup()

    func run(_ body: @escaping @Sendable () -> Void) {
        group.enter()
        Thread {
            body()
            self.group.leave()
        }.start()
    }

    func wait() { group.wait() }
}
