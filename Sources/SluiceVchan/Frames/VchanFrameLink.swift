import SluiceSystem
public import SluiceWire

/// Frames over a vchan for a thread that does its own waiting (the handler pump, the caller's loop).
///
/// The vchan stays in non-blocking mode: `receiveIfReady` returns nil when no whole frame is there, and `send`
/// waits for ring space by itself (consuming events is harmless: every reader re-checks the ring before it waits).
/// A frame's prefix and body are published together by the sender, so a prefix without its body is a protocol
/// error (`truncated-frame`), never a wait.
public final class VchanFrameLink: @unchecked Sendable {
    public let vchan: any Vchan
    public let encoder: FrameEncoder
    public let decoder: FrameDecoder

    /// Ring size of every per-call data channel on the local backend, each way: room for four of the largest data
    /// frames.
    public static let dataRingBytes = 256 * 1_024
    /// Ring size of a per-call data channel on Xen, each way: one of the largest data frames, as qrexec's 64 KiB. Each
    /// ring page is a grant, and a Linux domain may have only 1 024 grants out through gntalloc by default: 256 KiB
    /// rings (129 grants a channel) allowed 7 calls at once per domain; 64 KiB rings (33) allow 31.
    public static let xenDataRingBytes = 64 * 1_024

    /// The data ring size for `transport`.
    public static func dataRingBytes(for transport: VchanTransport) -> Int {
        if case .xen = transport { return xenDataRingBytes }
        return dataRingBytes
    }
    /// Payload per `data` frame.
    public static let chunkBytes = 60 * 1_024

    public init(vchan: any Vchan, receiving: Direction, limits: WireLimits = .default) {
        self.vchan = vchan
        vchan.isBlocking = false
        decoder = FrameDecoder(direction: receiving, limits: limits)
        encoder = FrameEncoder(direction: receiving.reversed, limits: limits)
    }

    /// Sends one frame, waiting for space.
    public func send(_ message: Message) throws(SluiceError) {
        let frame = try encoder.encode(message)
        while try !vchan.send(frame) { try vchan.wait() }
    }

    /// Sends `bytes` of `stream` as data frames of at most `chunkBytes`.
    public func send(_ stream: StreamID, _ bytes: UnsafeRawBufferPointer) throws(SluiceError) {
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + Self.chunkBytes)
            try send(.data(DataChunk(stream: stream, bytes: Array(bytes[offset..<end]))))
            offset = end
        }
    }

    /// One frame if a whole one is there, nil if none is; throws `channel-closed` after the peer's last frame.
    public func receiveIfReady() throws(SluiceError) -> Message? {
        let ready = vchan.dataReady
        guard ready >= WireLimits.prefixBytes else {
            if vchan.state == .closed && vchan.dataReady == 0 {
                throw SluiceError(.channelClosed, "the peer closed the data channel")
            }
            return nil
        }
        guard let prefixBytes = try vchan.receive(count: WireLimits.prefixBytes),
            let prefix = prefixBytes.withUnsafeBytes({ FramePrefix(reading: $0) })
        else { return nil }
        try prefix.validate(decoder.limits)
        let rest = prefix.frameLength - WireLimits.prefixBytes
        guard rest <= vchan.dataReady, let body = try vchan.receive(count: rest) else {
            throw SluiceError(.truncatedFrame, "a frame's prefix arrived without the \(rest) bytes it announces")
        }
        return try decoder.decode(datagram: prefixBytes + body)
    }

    /// Waits up to `timeoutMilliseconds` (negative: forever) for a frame.
    public func receive(timeoutMilliseconds: Int32 = -1) throws(SluiceError) -> Message? {
        let deadline =
            timeoutMilliseconds < 0 ? nil : MonotonicClock.nanoseconds + UInt64(timeoutMilliseconds) * 1_000_000
        while true {
            if let message = try receiveIfReady() { return message }
            var wait: Int32 = -1
            if let deadline {
                let now = MonotonicClock.nanoseconds
                guard now < deadline else { return nil }
                wait = Int32(clamping: (deadline - now) / 1_000_000 + 1)
            }
            let ready = try Readiness.wait(try vchan.readinessDescriptor, timeoutMilliseconds: wait)
            if ready.first { vchan.consumeEvents() }
        }
    }

}
