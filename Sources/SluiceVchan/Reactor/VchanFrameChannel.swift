public import Logging
import SluiceLocks
import SluiceSystem
public import SluiceWire
import Synchronization

/// Frames over a vchan, for async code: each frame is one datagram (the 8-byte prefix and the rest are
/// published together by the sender, so a prefix that arrives alone is a protocol error, not a wait).
///
/// The reactor thread drains whole frames into a bounded queue and resumes a waiting `receive()` once per
/// frame. `send` waits for ring space without blocking a thread. The vchan is switched to non-blocking mode.
public final class VchanFrameChannel: Sendable {
    public let vchan: any Vchan
    private let reactor: Reactor
    private let decoder: FrameDecoder
    private let encoder: FrameEncoder
    private let logger: Logger
    private let state = LockedValue(State())
    private let token: Atomic<UInt64> = Atomic(0)
    private let readiness: FileDescriptor
    /// One writer at a time: the ring's producer side is not safe for concurrent writers.
    private let sendLock = Lock()

    /// Frames read ahead of `receive()` calls; past it the channel stops reading and the sender waits.
    public static let maxQueuedFrames = 64

    private struct State: ~Copyable {
        var queue: [Message] = []
        var head = 0
        var failure: SluiceError?
        var receiver: CheckedContinuation<Result<Message, SluiceError>, Never>?
        /// Senders waiting for ring space, woken together when space frees up (they then take turns); keyed so that
        /// a cancelled sender can take itself out.
        var senders: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextSender: UInt64 = 0
        var closed = false

        var queued: Int { queue.count - head }
        let maxQueuedFrames = VchanFrameChannel.maxQueuedFrames

        mutating func pop() -> Message? {
            guard head < queue.count else { return nil }
            let message = queue[head]
            head += 1
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= maxQueuedFrames {
                // A queue that is never quite empty (a domain that keeps it topped up) must not keep every frame
                // it ever held: drop the consumed ones. Found by the soak: sluiced grew 20 MiB per 50 000 calls.
                queue.removeFirst(head)
                head = 0
            }
            return message
        }
    }

    /// - Parameters:
    ///   - receiving: the direction frames arrive in (the decoder refuses every other).
    public init(vchan: any Vchan, reactor: Reactor, receiving: Direction, limits: WireLimits = .default, logger: Logger)
        throws(SluiceError)
    {
        self.vchan = vchan
        self.reactor = reactor
        decoder = FrameDecoder(direction: receiving, limits: limits)
        encoder = FrameEncoder(direction: receiving.reversed, limits: limits)
        self.logger = logger
        vchan.isBlocking = false
        readiness = try vchan.readinessDescriptor
        // Work for the reactor's busy-poll only while the queue has room: a full queue (a receiver that is not
        // keeping up, or a domain whose requests are being held back) leaves the ring unread, and reporting it as
        // readable would keep the reactor spinning on this channel while every other one waits.
        let busyPoll: Reactor.Probe = { [weak self] in self?.canTakeMore ?? false }
        let registered = try reactor.register(readiness, busyPoll: busyPoll, handler: { [weak self] in self?.pump() })
        token.store(registered, ordering: .releasing)
        pump()
    }

    deinit { close() }

    private var canTakeMore: Bool {
        state.withLock { !$0.closed && $0.failure == nil && $0.queued < Self.maxQueuedFrames } && vchan.isReadable
    }

    // MARK: Receiving

    /// The next frame. Throws the channel's failure (a protocol error, `channel-closed` at the end) once the
    /// frames before it are consumed, and `cancelled` if the task is cancelled while waiting.
    public func receive() async throws(SluiceError) -> Message {
        let immediate: Result<Message, SluiceError>? = state.withLock { state in
            if let message = state.pop() { return .success(message) }
            if let failure = state.failure { return .failure(failure) }
            return nil
        }
        if let immediate {
            pump()
            return try immediate.get()
        }
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<Message, SluiceError>, Never>) in
                let ready: Result<Message, SluiceError>? = state.withLock { state in
                    if let message = state.pop() { return .success(message) }
                    if let failure = state.failure { return .failure(failure) }
                    if Task.isCancelled { return .failure(SluiceError(.cancelled, "the receive was cancelled")) }
                    if state.receiver != nil {
                        return .failure(
                            SluiceError(.systemCallFailed, "two tasks received on one frame channel at once"))
                    }
                    state.receiver = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiting = state.withLock { state in
                defer { state.receiver = nil }
                return state.receiver
            }
            waiting?.resume(returning: .failure(SluiceError(.cancelled, "the receive was cancelled")))
        }
        pump()
        return try result.get()
    }

    /// Drains whole frames from the vchan into the queue and wakes whoever waits. Runs on the reactor thread,
    /// and after a `receive` that made room in a full queue.
    private func pump() {
        var wakeReceiver: (CheckedContinuation<Result<Message, SluiceError>, Never>, Result<Message, SluiceError>)?
        var wakeSenders: [CheckedContinuation<Void, Never>] = []
        var unregister = false
        state.withLock { state in
            guard !state.closed else { return }
            vchan.consumeEvents()
            while state.failure == nil && state.queued < Self.maxQueuedFrames {
                do throws(SluiceError) {
                    guard let message = try readFrame() else { break }
                    state.queue.append(message)
                } catch {
                    state.failure = error
                    if error.code != .channelClosed {
                        logger.warning("vchan \(vchan.peer):\(vchan.port): closing on a bad frame: \(error)")
                    }
                }
            }
            if state.failure != nil { unregister = true }
            if let receiver = state.receiver {
                if let message = state.pop() {
                    wakeReceiver = (receiver, .success(message))
                    state.receiver = nil
                } else if let failure = state.failure {
                    wakeReceiver = (receiver, .failure(failure))
                    state.receiver = nil
                }
            }
            if !state.senders.isEmpty, state.failure != nil || vchan.bufferSpace > 0 {
                wakeSenders = Array(state.senders.values)
                state.senders.removeAll()
            }
        }
        if unregister { stopWatching() }
        if let (continuation, result) = wakeReceiver { continuation.resume(returning: result) }
        for sender in wakeSenders { sender.resume() }
    }

    /// One whole frame from the ring, nil if none is there, or the error that ends the channel.
    private func readFrame() throws(SluiceError) -> Message? {
        let ready = vchan.dataReady
        guard ready >= WireLimits.prefixBytes else {
            if ready == 0 && vchan.state == .closed { throw SluiceError(.channelClosed, "the peer closed the vchan") }
            if ready > 0 && vchan.state == .closed {
                throw SluiceError(.truncatedFrame, "the peer closed the vchan in the middle of a frame")
            }
            return nil
        }
        guard let prefixBytes = try vchan.receive(count: WireLimits.prefixBytes) else { return nil }
        let prefix = prefixBytes.withUnsafeBytes { FramePrefix(reading: $0) }!
        try prefix.validate(decoder.limits)
        let rest = prefix.frameLength - WireLimits.prefixBytes
        guard rest <= vchan.dataReady, let body = try vchan.receive(count: rest) else {
            throw SluiceError(.truncatedFrame, "a frame's prefix arrived without the \(rest) bytes it announces")
        }
        return try decoder.decode(datagram: prefixBytes + body)
    }

    // MARK: Sending

    /// Sends one frame, waiting (without blocking a thread) for ring space.
    /// Sends `message` at once if the ring has room and no other sender is waiting (so order is kept), from any
    /// thread without entering async code; returns false otherwise, and the caller then uses `send`.
    public func trySend(_ message: Message) throws(SluiceError) -> Bool {
        let frame = try encoder.encode(message)
        let ready = state.withLock { state -> Bool? in
            if state.closed { return nil }
            return state.senders.isEmpty
        }
        guard let ready else { throw SluiceError(.channelClosed, "the channel is closed") }
        guard ready, frame.count <= vchan.maxDatagramBytes else { return false }
        let sent = sendLock.withLock { Result { () throws(SluiceError) in try vchan.send(frame) } }
        return try sent.get()
    }

    /// Sends one frame, waiting (without blocking a thread) for ring space. Throws `cancelled` if the task is
    /// cancelled while it waits: the frame was then not sent.
    public func send(_ message: Message) async throws(SluiceError) {
        let frame = try encoder.encode(message)
        guard frame.count <= vchan.maxDatagramBytes else {
            throw SluiceError(
                .datagramTooLarge, "a \(frame.count)-byte frame cannot fit a \(vchan.maxDatagramBytes)-byte ring")
        }
        while true {
            if let failure = state.withLock({ $0.closed ? SluiceError(.channelClosed, "the channel is closed") : nil })
            {
                throw failure
            }
            let sent = sendLock.withLock { Result { () throws(SluiceError) in try vchan.send(frame) } }
            if try sent.get() { return }
            if Task.isCancelled { throw SluiceError(.cancelled, "the send was cancelled") }
            let id = state.withLock { state in
                defer { state.nextSender += 1 }
                return state.nextSender
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { state in
                        if state.failure != nil || state.closed || Task.isCancelled { return true }
                        // Space may have freed up between the failed send and this registration.
                        if vchan.bufferSpace >= frame.count { return true }
                        state.senders[id] = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            } onCancel: {
                state.withLock { $0.senders.removeValue(forKey: id) }?.resume()
            }
        }
    }

    /// As `send`, but gives up after `milliseconds` of waiting for ring space, so that a peer that stops reading
    /// cannot hold the sender forever. Throws `cancelled` if the frame was not sent in time.
    public func send(_ message: Message, withinMilliseconds milliseconds: Int) async throws(SluiceError) {
        if try trySend(message) { return }
        let outcome: Result<Void, SluiceError>? = await withTaskGroup(of: Result<Void, SluiceError>?.self) { group in
            group.addTask {
                do throws(SluiceError) {
                    try await self.send(message)
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                try? await Task.sleep(nanoseconds: UInt64(milliseconds) * 1_000_000)
                return nil
            }
            // The send's own result decides: after the time runs out it is cancelled, and reports whether the
            // frame went out before that.
            var sent: Result<Void, SluiceError>?
            for await result in group {
                if let result {
                    sent = result
                    group.cancelAll()
                } else if sent == nil {
                    group.cancelAll()
                }
            }
            return sent
        }
        switch outcome {
        case .success?: return
        case .failure(let error)? where error.code == .cancelled:
            throw SluiceError(.cancelled, "the peer read nothing for \(milliseconds) ms; the frame was not sent")
        case .failure(let error)?: throw error
        case nil: throw SluiceError(.cancelled, "the frame was not sent")
        }
    }

    // MARK: Closing

    /// Closes the vchan and fails a waiting `receive` with `channel-closed`.
    public func close() {
        let waiting = state.withLock { state in
            defer {
                state.closed = true
                state.receiver = nil
                state.senders.removeAll()
            }
            return (state.closed, state.receiver, Array(state.senders.values))
        }
        guard !waiting.0 else { return }
        stopWatching()
        vchan.close()
        waiting.1?.resume(returning: .failure(SluiceError(.channelClosed, "the channel was closed")))
        for sender in waiting.2 { sender.resume() }
    }

    private func stopWatching() {
        let registered = token.exchange(0, ordering: .acquiringAndReleasing)
        if registered != 0 { reactor.unregister(registered, descriptor: readiness) }
    }
}
