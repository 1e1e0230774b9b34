public import Logging
import SluiceLocks
import SluiceSystem
public import SluiceWire
import Synchronization

/// Frames over a vchan, for async code: each frame is one datagram (the 8-byte prefix and the rest are
/// published together by the sender, so a prefix that arrives alone is a protocol error, not a wait).
///
/// The reactor thread drains whole frames into a bounded queue and resumes a waiting `receive()` once per
/// frame. Sending goes through one ordered outbox: `post` never waits (what the ring cannot take now waits in the
/// outbox and leaves, in order, when the peer makes room), and `send` waits for its own frame to leave without
/// blocking a thread. So frames leave in the order they were posted, from whatever thread posted them. The vchan is
/// switched to non-blocking mode.
public final class VchanFrameChannel: Sendable {
    public let vchan: any Vchan
    private let reactor: Reactor
    private let decoder: FrameDecoder
    private let encoder: FrameEncoder
    private let logger: Logger
    private let state = LockedValue(State())
    /// The frames waiting to be sent; its lock also makes each send to the ring one writer's (the ring's producer
    /// side is not safe for concurrent writers).
    private let outbox = LockedValue(Outbox())
    private let token: Atomic<UInt64> = Atomic(0)
    private let readiness: FileDescriptor

    /// Frames read ahead of `receive()` calls; past it the channel stops reading and the sender waits.
    public static let maxQueuedFrames = 64
    /// Bytes that may wait in the outbox for a peer that does not read; past it the channel is closed with
    /// `outbox-full` (a peer that lets 4 MiB of orders pile up has stopped reading).
    public static let maxOutboxBytes = 4 << 20

    private struct State: ~Copyable {
        var queue: [Message] = []
        var head = 0
        var failure: SluiceError?
        var receiver: CheckedContinuation<Result<Message, SluiceError>, Never>?
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

    private struct Outbox: ~Copyable {
        var frames: [[UInt8]] = []
        /// When each waiting frame was posted (monotonic nanoseconds).
        var postedAt: [UInt64] = []
        var head = 0
        var bytes = 0
        /// Frames posted so far: a frame's sequence number is the count when it was posted (the first is 1).
        var posted: UInt64 = 0
        /// Frames that have left: every sequence number up to this one.
        var sent: UInt64 = 0
        var failure: SluiceError?
        /// Tasks waiting for a frame to leave, by waiter id.
        var waiters: [UInt64: (sequence: UInt64, continuation: CheckedContinuation<Bool, Never>)] = [:]
        var nextWaiter: UInt64 = 0
        /// Waiters whose time ran out before they were registered.
        var expired: Set<UInt64> = []

        var isEmpty: Bool { head == frames.count }

        mutating func popFront() {
            bytes -= frames[head].count
            frames[head] = []
            head += 1
            sent += 1
            if head == frames.count {
                frames.removeAll(keepingCapacity: true)
                postedAt.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 256 {
                frames.removeFirst(head)
                postedAt.removeFirst(head)
                head = 0
            }
        }

        /// The waiters whose frame has left (true) or never will (false).
        mutating func settled() -> [(CheckedContinuation<Bool, Never>, Bool)] {
            var ready: [(CheckedContinuation<Bool, Never>, Bool)] = []
            for (id, waiter) in waiters where waiter.sequence <= sent || failure != nil {
                ready.append((waiter.continuation, waiter.sequence <= sent))
                waiters[id] = nil
            }
            return ready
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
        }
        if unregister { stopWatching() }
        if let (continuation, result) = wakeReceiver { continuation.resume(returning: result) }
        // The wake-up may be the peer making room: what waits in the outbox goes now.
        flush()
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

    /// Queues `message` behind every frame posted before it and sends what the ring takes now; never waits. Returns
    /// the frame's sequence number (for `waitUntilSent`) and whether it left at once. Throws `channel-closed` on a
    /// closed channel, `datagram-too-large` for a frame no ring could take, and `outbox-full` (closing the channel)
    /// when `maxOutboxBytes` already wait for a peer that does not read.
    @discardableResult
    public func post(_ message: Message) throws(SluiceError) -> (sequence: UInt64, sentNow: Bool) {
        let frame = try encoder.encode(message)
        guard frame.count <= vchan.maxDatagramBytes else {
            throw SluiceError(
                .datagramTooLarge, "a \(frame.count)-byte frame cannot fit a \(vchan.maxDatagramBytes)-byte ring")
        }
        let now = MonotonicClock.nanoseconds
        let outcome = outbox.withLock {
            box -> Result<(UInt64, Bool, [(CheckedContinuation<Bool, Never>, Bool)]), SluiceError> in
            if let failure = box.failure { return .failure(failure) }
            guard box.bytes + frame.count <= Self.maxOutboxBytes else {
                let full = SluiceError(
                    .outboxFull, "\(box.bytes) bytes wait for a peer that does not read; the channel is closed")
                box.failure = full
                return .failure(full)
            }
            box.frames.append(frame)
            box.postedAt.append(now)
            box.bytes += frame.count
            box.posted += 1
            let sequence = box.posted
            drain(&box)
            return .success((sequence, box.sent >= sequence, box.settled()))
        }
        switch outcome {
        case .success(let (sequence, sentNow, settled)):
            for (continuation, sent) in settled { continuation.resume(returning: sent) }
            return (sequence, sentNow)
        case .failure(let error):
            if error.code == .outboxFull {
                logger.warning("vchan \(vchan.peer):\(vchan.port): \(error.message)")
                fail(error)
            }
            throw error
        }
    }

    /// Sends `message` at once if nothing waits in the outbox and the ring has room; returns false otherwise, and
    /// then nothing is queued (for a message that may be dropped, such as a refusal to a domain that floods).
    public func trySend(_ message: Message) throws(SluiceError) -> Bool {
        let frame = try encoder.encode(message)
        guard frame.count <= vchan.maxDatagramBytes else { return false }
        let sent = outbox.withLock { box -> Result<Bool, SluiceError> in
            if let failure = box.failure { return .failure(failure) }
            guard box.isEmpty else { return .success(false) }
            return Result { () throws(SluiceError) in try vchan.send(frame) }
        }
        return try sent.get()
    }

    /// Posts `message` and waits (without blocking a thread) until it has left. Throws the channel's failure if it
    /// never will, and `cancelled` if the task is cancelled first (the frame then still waits in the outbox).
    public func send(_ message: Message) async throws(SluiceError) {
        let (sequence, sentNow) = try post(message)
        if sentNow { return }
        guard await waitUntilSent(sequence, timeoutNanoseconds: .max) else {
            if Task.isCancelled { throw SluiceError(.cancelled, "the send was cancelled") }
            throw failureOrClosed()
        }
    }

    /// As `send`, but gives up after `milliseconds`, so that a peer that stops reading cannot hold the sender for
    /// ever: then it throws `cancelled` (the frame still waits in the outbox; a sender that gives up on the peer
    /// closes the channel).
    public func send(_ message: Message, withinMilliseconds milliseconds: Int) async throws(SluiceError) {
        let (sequence, sentNow) = try post(message)
        if sentNow { return }
        guard await waitUntilSent(sequence, timeoutNanoseconds: UInt64(max(milliseconds, 0)) * 1_000_000) else {
            if outbox.withLock({ $0.failure != nil }) { throw failureOrClosed() }
            throw SluiceError(.cancelled, "the peer read nothing for \(milliseconds) ms; the frame was not sent")
        }
    }

    /// The oldest frame still waiting in the outbox: its sequence number and when it was posted (monotonic
    /// nanoseconds); nil when the outbox is empty.
    public var oldestWaiting: (sequence: UInt64, postedAt: UInt64)? {
        outbox.withLock { box in box.isEmpty ? nil : (box.sent + 1, box.postedAt[box.head]) }
    }

    /// Waits until frame `sequence` has left (true), or the channel fails, the time runs out or the task is cancelled
    /// (false).
    public func waitUntilSent(_ sequence: UInt64, timeoutNanoseconds: UInt64) async -> Bool {
        let id = outbox.withLock { box in
            defer { box.nextWaiter += 1 }
            return box.nextWaiter
        }
        let timer: Task<Void, Never>? =
            timeoutNanoseconds == .max
            ? nil
            : Task { [weak self] in
                try? await Task.sleep(nanoseconds: timeoutNanoseconds)
                self?.settleWaiter(id)
            }
        defer { timer?.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let now = outbox.withLock { box -> Bool? in
                    if box.sent >= sequence { return true }
                    if box.failure != nil || box.expired.remove(id) != nil || Task.isCancelled { return false }
                    box.waiters[id] = (sequence, continuation)
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            settleWaiter(id)
        }
    }

    /// Ends waiter `id`'s wait with false (its time ran out, or its task was cancelled).
    private func settleWaiter(_ id: UInt64) {
        let waiter = outbox.withLock { box -> CheckedContinuation<Bool, Never>? in
            guard let waiter = box.waiters.removeValue(forKey: id) else {
                box.expired.insert(id)
                return nil
            }
            return waiter.continuation
        }
        waiter?.resume(returning: false)
    }

    /// Sends what waits in the outbox while the ring takes it, and settles the waiters it can.
    private func flush() {
        let settled = outbox.withLock { box -> [(CheckedContinuation<Bool, Never>, Bool)] in
            guard !box.isEmpty || !box.waiters.isEmpty else { return [] }
            drain(&box)
            return box.settled()
        }
        for (continuation, sent) in settled { continuation.resume(returning: sent) }
    }

    /// The front of the outbox onto the ring, in order, until one does not fit (the vchan has then asked the peer
    /// to signal when it reads, which wakes the reactor, which flushes again).
    private func drain(_ box: inout Outbox) {
        while !box.isEmpty {
            do throws(SluiceError) {
                guard try vchan.send(box.frames[box.head]) else { return }
            } catch {
                box.failure = error
                return
            }
            box.popFront()
        }
    }

    private func failureOrClosed() -> SluiceError {
        outbox.withLock { $0.failure } ?? SluiceError(.channelClosed, "the channel is closed")
    }

    // MARK: Closing

    /// Closes the vchan, fails a waiting `receive` with `channel-closed` and ends every wait for a frame to leave.
    public func close() {
        fail(SluiceError(.channelClosed, "the channel was closed"))
    }

    /// Closes the channel with `error` as the failure its receiver and its senders see.
    private func fail(_ error: SluiceError) {
        let waiting = state.withLock { state in
            defer {
                state.closed = true
                state.receiver = nil
                if state.failure == nil { state.failure = error }
            }
            return (state.closed, state.receiver)
        }
        let settled = outbox.withLock { box -> [(CheckedContinuation<Bool, Never>, Bool)] in
            if box.failure == nil { box.failure = error }
            return box.settled()
        }
        for (continuation, sent) in settled { continuation.resume(returning: sent) }
        guard !waiting.0 else { return }
        stopWatching()
        vchan.close()
        waiting.1?.resume(returning: .failure(error))
    }

    private func stopWatching() {
        let registered = token.exchange(0, ordering: .acquiringAndReleasing)
        if registered != 0 { reactor.unregister(registered, descriptor: readiness) }
    }
}
