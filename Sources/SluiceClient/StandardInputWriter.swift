public import SluiceCaller
import SluiceLocks
public import SluiceSystem
public import SluiceWire

/// A call's stdin: `write` hands bytes to the handler, `finish` ends its input (it reads end of file).
///
/// `write` returns once the bytes are queued; while more than `bufferLimit` bytes wait to be sent, it waits too.
public final class StandardInputWriter: CallInput, @unchecked Sendable {
    /// Bytes queued for the handler before `write` waits.
    public static let bufferLimit = 1 << 20

    private struct State {
        var chunks: [[UInt8]] = []
        var head = 0
        var offset = 0
        var buffered = 0
        var finished = false
        var closed = false
        var writers: [CheckedContinuation<Void, Never>] = []
    }

    private let state = LockedValue(State())
    private let notifier: EventNotifier
    public var readiness: FileDescriptor { notifier.descriptor }

    init() throws(SluiceError) { notifier = try EventNotifier.create() }

    deinit { notifier.descriptor.close() }

    /// Queues `bytes` for the handler. Throws `channel-closed` once the call has ended or `finish` was called.
    public func write(_ bytes: [UInt8]) async throws(SluiceError) {
        guard !bytes.isEmpty else { return }
        let accepted: Bool? = state.withLock { state in
            guard !state.finished, !state.closed else { return nil }
            state.chunks.append(bytes)
            state.buffered += bytes.count
            return state.buffered <= Self.bufferLimit
        }
        guard let accepted else { throw SluiceError(.channelClosed, "the call's input is finished") }
        notifier.signal()
        if accepted { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { state in
                guard state.buffered > Self.bufferLimit, !state.closed else { return true }
                state.writers.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    /// Ends the handler's input.
    public func finish() {
        state.withLock { $0.finished = true }
        notifier.signal()
    }

    /// The call ended: release every waiting writer.
    func close() {
        let writers = state.withLock { state in
            state.closed = true
            defer { state.writers.removeAll() }
            return state.writers
        }
        for writer in writers { writer.resume() }
    }

    // MARK: CallInput, for the pump thread

    public func read(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        let (count, writers): (Int?, [CheckedContinuation<Void, Never>]) = state.withLock { state in
            guard state.head < state.chunks.count else {
                if state.finished { return (0, []) }
                // Drained under the lock: a write after this signals again, so no wake-up is lost.
                _ = notifier.drain()
                return (nil, [])
            }
            var copied = 0
            while copied < buffer.count, state.head < state.chunks.count {
                let chunk = state.chunks[state.head]
                let take = min(buffer.count - copied, chunk.count - state.offset)
                chunk.withUnsafeBytes { source in
                    UnsafeMutableRawBufferPointer(rebasing: buffer[copied..<copied + take]).copyMemory(
                        from: UnsafeRawBufferPointer(rebasing: source[state.offset..<state.offset + take]))
                }
                copied += take
                state.offset += take
                if state.offset == chunk.count {
                    state.head += 1
                    state.offset = 0
                }
            }
            if state.head == state.chunks.count {
                state.chunks.removeAll(keepingCapacity: true)
                state.head = 0
            }
            state.buffered -= copied
            guard state.buffered <= Self.bufferLimit else { return (copied, []) }
            defer { state.writers.removeAll() }
            return (copied, state.writers)
        }
        for writer in writers { writer.resume() }
        return count
    }
}
