/// Turns messages into frames: prefix, compact JSON header, payload.
///
/// The encoder enforces the same rules as the decoder, so a frame it writes is always one the peer accepts:
/// the direction, the limits, and the free-text length. Names are valid by construction of their types.
public struct FrameEncoder: Sendable {
    public let direction: Direction
    public let limits: WireLimits

    public init(direction: Direction, limits: WireLimits = .default) {
        self.direction = direction
        self.limits = limits
    }

    /// Encodes one message as a new frame.
    public func encode(_ message: Message) throws(SluiceError) -> [UInt8] {
        var bytes: [UInt8] = []
        try encode(message, appendingTo: &bytes)
        return bytes
    }

    /// Appends one frame to `bytes`. On error, `bytes` is left as it was.
    public func encode(_ message: Message, appendingTo bytes: inout [UInt8]) throws(SluiceError) {
        guard message.mayTravel(direction) else {
            throw SluiceError(.wrongDirection, "\"\(message.kind.rawValue)\" messages may not travel \(direction)")
        }
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: WireLimits.prefixBytes))
        var writer = JSONWriter(into: bytes)
        bytes = []
        do throws(SluiceError) {
            try MessageCoding.write(message, into: &writer, limits: limits)
        } catch {
            bytes = writer.bytes
            bytes.removeSubrange(start...)
            throw error
        }
        bytes = writer.bytes
        let headerLength = bytes.count - start - WireLimits.prefixBytes
        var payloadLength = 0
        if case .data(let chunk) = message {
            payloadLength = chunk.bytes.count
            bytes.append(contentsOf: chunk.bytes)
        }
        let prefix = FramePrefix(
            headerLength: UInt32(clamping: headerLength),
            payloadLength: UInt32(clamping: payloadLength)
        )
        do throws(SluiceError) {
            try prefix.validate(limits)
            if case .data(let chunk) = message, chunk.bytes.isEmpty {
                throw SluiceError(.missingPayload, "a data message must carry at least one byte")
            }
        } catch {
            bytes.removeSubrange(start...)
            throw error
        }
        prefix.write(into: &bytes, at: start)
    }
}
