/// Turns frames into messages, strictly.
///
/// Checks, in order: the prefix lengths against `WireLimits` (before any allocation), the header's raw bytes
/// (depth, NUL), the JSON (jansson, duplicate keys rejected), the `type`, the direction, the fields (required,
/// typed, no unknown ones), the payload rule. Any failure is a `SluiceError` and nothing is consumed; a partial
/// frame is never returned.
public struct FrameDecoder: Sendable {
    /// The direction frames arrive in, from the receiver's point of view (`.agentToDaemon` for the daemon).
    public let direction: Direction
    public let limits: WireLimits

    public init(direction: Direction, limits: WireLimits = .default) {
        self.direction = direction
        self.limits = limits
    }

    /// The result of looking at the front of a byte stream.
    public enum Outcome: Sendable, Hashable {
        /// The buffer holds only part of a frame; at least this many bytes in all are needed. Nothing consumed.
        case needMoreBytes(Int)
        /// One whole frame, which used the first `consumed` bytes.
        case frame(Message, consumed: Int)
    }

    /// Decodes the frame at the front of `buffer` (a stream, such as a UNIX stream socket's bytes).
    public func decode(from buffer: UnsafeRawBufferPointer) throws(SluiceError) -> Outcome {
        guard let prefix = FramePrefix(reading: buffer) else { return .needMoreBytes(WireLimits.prefixBytes) }
        try prefix.validate(limits)
        let length = prefix.frameLength
        guard buffer.count >= length else { return .needMoreBytes(length) }
        let message = try decodeBody(prefix, UnsafeRawBufferPointer(rebasing: buffer[..<length]))
        return .frame(message, consumed: length)
    }

    /// Decodes one datagram that must hold exactly one frame (a vchan datagram, a SEQPACKET message).
    public func decode(datagram: UnsafeRawBufferPointer) throws(SluiceError) -> Message {
        guard let prefix = FramePrefix(reading: datagram) else {
            throw SluiceError(.truncatedFrame, "the datagram is \(datagram.count) bytes, shorter than a frame prefix")
        }
        try prefix.validate(limits)
        guard datagram.count >= prefix.frameLength else {
            throw SluiceError(
                .truncatedFrame,
                "the datagram is \(datagram.count) bytes; its prefix announces \(prefix.frameLength)"
            )
        }
        guard datagram.count == prefix.frameLength else {
            throw SluiceError(
                .trailingBytes,
                "the datagram is \(datagram.count) bytes; its prefix announces \(prefix.frameLength)"
            )
        }
        return try decodeBody(prefix, datagram)
    }

    /// Convenience for `[UInt8]` datagrams.
    public func decode(datagram: [UInt8]) throws(SluiceError) -> Message {
        let result = datagram.withUnsafeBytes { buffer in
            Result { () throws(SluiceError) in try decode(datagram: buffer) }
        }
        return try result.get()
    }

    /// Convenience for `[UInt8]` streams.
    public func decode(from bytes: [UInt8]) throws(SluiceError) -> Outcome {
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(SluiceError) in try decode(from: buffer) }
        }
        return try result.get()
    }

    private func decodeBody(_ prefix: FramePrefix, _ frame: UnsafeRawBufferPointer) throws(SluiceError) -> Message {
        let headerEnd = WireLimits.prefixBytes + Int(prefix.headerLength)
        let header = UnsafeRawBufferPointer(rebasing: frame[WireLimits.prefixBytes..<headerEnd])
        let payload = UnsafeRawBufferPointer(rebasing: frame[headerEnd...])
        var reader = try HeaderReader(parsing: header, maxDepth: limits.maxHeaderDepth)
        return try MessageCoding.read(
            &reader,
            payload: payload,
            direction: direction,
            limits: limits
        )
    }
}
