public import SluiceSystem
public import SluiceWire

/// What `Vchan.state` reports, with libxenvchan's `is_open` values.
public enum VchanState: UInt8, Sendable, Hashable {
    /// The peer has closed its end or died. Data it queued before can still be read.
    case closed = 0
    /// Both ends are open.
    case connected = 1
    /// A server whose client has not connected yet.
    case waitingForClient = 2
}

/// One end of a vchan: two rings in shared memory, one per direction, and an event to wake the other end.
///
/// Both backends (`LocalVchan` over memfd and eventfd, `XenVchan` over libxenvchan) follow libxenvchan's
/// semantics, so code written against this protocol runs on either:
/// - **datagrams** (`send`, `receive`) move all of the bytes or none; one larger than the ring is
///   `datagram-too-large`, never a hang;
/// - **streams** (`write`, `read`) move what fits or what is there;
/// - in blocking mode the calls wait for space or data; in non-blocking mode they return at once;
/// - after the peer closes, what it queued before can still be read; then reads fail with `channel-closed`.
///
/// An endpoint is used by at most one reading thread and one writing thread at a time.
public protocol Vchan: AnyObject, Sendable {
    /// The domain at the other end.
    var peer: DomainID { get }
    var port: VchanPort { get }
    /// Whether `send`, `receive`, `write` and `read` wait (default) or return at once.
    var isBlocking: Bool { get set }

    /// Sends all of `bytes` as one datagram. Returns false only in non-blocking mode when the ring lacks space.
    func send(_ bytes: UnsafeRawBufferPointer) throws(SluiceError) -> Bool
    /// Receives exactly `buffer.count` bytes. Returns false only in non-blocking mode when fewer are there.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws(SluiceError) -> Bool
    /// Writes what fits of `bytes` (blocking mode: all of it). Returns the count written.
    func write(_ bytes: UnsafeRawBufferPointer) throws(SluiceError) -> Int
    /// Reads what is there, up to `buffer.count` (blocking mode: at least one byte). Returns the count read.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(SluiceError) -> Int

    /// Bytes readable now. Also asks the peer to signal when more arrive.
    var dataReady: Int { get }
    /// Bytes writable now. Also asks the peer to signal when space frees up.
    var bufferSpace: Int { get }
    /// Whether any byte is readable, checked without asking the peer for a signal: for busy-polling.
    var isReadable: Bool { get }
    /// The largest datagram the sending ring can ever hold.
    var maxDatagramBytes: Int { get }
    /// The size of the receiving ring: the largest datagram that can ever arrive.
    var receiveRingBytes: Int { get }

    /// A descriptor that becomes readable when the peer signals or goes away; for an event loop.
    var readinessDescriptor: FileDescriptor { get throws(SluiceError) }
    /// Consumes the pending signal, waiting for one if none is pending (`libxenvchan_wait`).
    func wait() throws(SluiceError)
    /// Consumes a pending signal if there is one, without waiting.
    func consumeEvents()

    var state: VchanState { get }
    /// Marks this end closed and wakes the peer, which can still drain what was queued.
    func close()
}

extension Vchan {
    /// Waits until the client of this freshly offered server has connected; `channel-closed` after
    /// `timeoutMilliseconds`. While it waits, `other` (if given) is watched too: each time it is readable, `readable`
    /// runs, and throws to end the wait or returns whether to go on watching `other`. `cancel` readable ends the wait
    /// with `cancelled`.
    public func waitForClient(
        timeoutMilliseconds: Int, watching other: FileDescriptor? = nil, cancel: FileDescriptor? = nil,
        readable: () throws(SluiceError) -> Bool = { true }
    ) throws(SluiceError) {
        let descriptor = try readinessDescriptor
        let deadline = MonotonicClock.milliseconds + timeoutMilliseconds
        var other = other
        while state == .waitingForClient {
            guard MonotonicClock.milliseconds < deadline else {
                throw SluiceError(.channelClosed, "the other side did not connect within \(timeoutMilliseconds) ms")
            }
            if let cancel, try Readiness.wait(cancel, timeoutMilliseconds: 0).first {
                throw SluiceError(.cancelled, "cancelled while waiting for the other side to connect")
            }
            let ready = try Readiness.wait(descriptor, other, timeoutMilliseconds: 20)
            consumeEvents()
            if ready.second, try !readable() { other = nil }
        }
    }

    /// Closes a server's end only after its client has closed (or `timeoutMilliseconds` passed): the client writes
    /// to the shared page when it closes, so the server's pages should still be there. On Xen that keeps the server's
    /// granted pages from returning to its allocator while the peer may still write to them.
    public func closeAfterPeer(timeoutMilliseconds: Int = 1_000) {
        let deadline = MonotonicClock.milliseconds + timeoutMilliseconds
        while state != .closed, MonotonicClock.milliseconds < deadline, let descriptor = try? readinessDescriptor {
            _ = try? Readiness.wait(descriptor, timeoutMilliseconds: 20)
            consumeEvents()
        }
        close()
    }

    /// Sends a byte array as one datagram.
    @discardableResult
    public func send(_ bytes: [UInt8]) throws(SluiceError) -> Bool {
        let result = bytes.withUnsafeBytes { buffer in Result { () throws(SluiceError) in try send(buffer) } }
        return try result.get()
    }

    /// Receives exactly `count` bytes, or nil in non-blocking mode when fewer are there.
    public func receive(count: Int) throws(SluiceError) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        let result = bytes.withUnsafeMutableBytes { buffer in
            Result { () throws(SluiceError) in try receive(into: buffer) }
        }
        return try result.get() ? bytes : nil
    }

    /// Writes a byte array as a stream; returns the count written.
    @discardableResult
    public func write(_ bytes: [UInt8]) throws(SluiceError) -> Int {
        let result = bytes.withUnsafeBytes { buffer in Result { () throws(SluiceError) in try write(buffer) } }
        return try result.get()
    }

    /// Reads up to `maxCount` bytes as a stream.
    public func read(maxCount: Int) throws(SluiceError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: maxCount)
        let result = bytes.withUnsafeMutableBytes { buffer in
            Result { () throws(SluiceError) in try read(into: buffer) }
        }
        bytes.removeSubrange(try result.get()...)
        return bytes
    }
}
