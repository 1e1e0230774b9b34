import SluiceLocks
import SluiceSystem
import SluiceWire

/// A call's stdout or stderr as an async sequence of byte chunks, in the order the handler wrote them.
///
/// Up to `bufferLimit` bytes wait for the reader; past that the call's pump waits too (backpressure, as a pipe), so a
/// caller that reads one stream must read, or `discard()`, the other. The sequence ends when the exit status arrives.
public final class ByteStream: AsyncSequence, Sendable {
    public typealias Element = [UInt8]

    /// Bytes held for a reader that is behind before the call stops reading from the target.
    public static let bufferLimit = 4 << 20

    private struct State {
        var chunks: [[UInt8]] = []
        var head = 0
        var buffered = 0
        var finished = false
        var discarding = false
        var reader: CheckedContinuation<[UInt8]?, Never>?
    }

    private let state = LockedValue(State())
    /// Signalled when the reader brings the buffer back under the limit.
    private let space: EventNotifier

    init() throws(SluiceError) { space = try EventNotifier.create() }

    deinit { space.descriptor.close() }

    /// Everything until the end, in one array.
    public func collect() async -> [UInt8] {
        var all: [UInt8] = []
        for await chunk in self { all += chunk }
        return all
    }

    /// Drops what arrives from now on, so that an unread stream never holds the call up.
    public func discard() {
        let reader = state.withLock { state in
            state.discarding = true
            state.chunks.removeAll()
            state.head = 0
            state.buffered = 0
            defer { state.reader = nil }
            return state.finished ? state.reader : nil
        }
        reader?.resume(returning: nil)
        space.signal()
    }

    // MARK: The pump's side

    /// Hands `bytes` to the reader; waits while the reader is more than `bufferLimit` behind.
    func push(_ bytes: [UInt8]) {
        while true {
            enum Step {
                case resume(CheckedContinuation<[UInt8]?, Never>)
                case queued
                case wait
            }
            let step: Step = state.withLock { state in
                if state.discarding { return .queued }
                if let reader = state.reader {
                    state.reader = nil
                    return .resume(reader)
                }
                guard state.buffered < Self.bufferLimit else { return .wait }
                state.chunks.append(bytes)
                state.buffered += bytes.count
                return .queued
            }
            switch step {
            case .resume(let reader):
                reader.resume(returning: bytes)
                return
            case .queued:
                return
            case .wait:
                _ = try? Readiness.wait(space.descriptor, timeoutMilliseconds: 100)
                _ = space.drain()
            }
        }
    }

    /// No more bytes will come.
    func finish() {
        let reader = state.withLock { state in
            state.finished = true
            defer { state.reader = nil }
            return state.reader
        }
        reader?.resume(returning: nil)
    }

    // MARK: The reader's side

    func next() async -> [UInt8]? {
        await withCheckedContinuation { (continuation: CheckedContinuation<[UInt8]?, Never>) in
            let immediate: [UInt8]?? = state.withLock { state in
                if state.head < state.chunks.count {
                    let chunk = state.chunks[state.head]
                    state.head += 1
                    let wasFull = state.buffered >= Self.bufferLimit
                    state.buffered -= chunk.count
                    if state.head == state.chunks.count {
                        state.chunks.removeAll(keepingCapacity: true)
                        state.head = 0
                    }
                    if wasFull && state.buffered < Self.bufferLimit { space.signal() }
                    return .some(chunk)
                }
                if state.finished || state.discarding { return .some(nil) }
                state.reader = continuation
                return .none
            }
            if let immediate { continuation.resume(returning: immediate) }
        }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let stream: ByteStream
        public mutating func next() async -> [UInt8]? { await stream.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: self) }
}
