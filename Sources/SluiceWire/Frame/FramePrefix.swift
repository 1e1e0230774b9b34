/// The 8-byte length prefix of every frame: the header length, then the payload length, each a little-endian
/// `UInt32`. Both are checked against `WireLimits` before anything is allocated.
public struct FramePrefix: Sendable, Hashable {
    public var headerLength: UInt32
    public var payloadLength: UInt32

    public init(headerLength: UInt32, payloadLength: UInt32) {
        self.headerLength = headerLength
        self.payloadLength = payloadLength
    }

    /// The whole frame's length, prefix included.
    public var frameLength: Int { WireLimits.prefixBytes + Int(headerLength) + Int(payloadLength) }

    /// Reads a prefix, or returns nil if fewer than 8 bytes are there.
    public init?(reading buffer: UnsafeRawBufferPointer) {
        guard buffer.count >= WireLimits.prefixBytes else { return nil }
        headerLength = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        payloadLength = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
    }

    /// Checks the lengths against `limits`, in the order the codes are numbered.
    public func validate(_ limits: WireLimits) throws(SluiceError) {
        guard headerLength != 0 else { throw SluiceError(.headerMissing, "the frame has no header") }
        guard Int(headerLength) <= limits.maxHeaderBytes else {
            throw SluiceError(
                .headerTooLarge,
                "the header is \(headerLength) bytes long; the limit is \(limits.maxHeaderBytes)"
            )
        }
        guard Int(payloadLength) <= limits.maxPayloadBytes else {
            throw SluiceError(
                .payloadTooLarge,
                "the payload is \(payloadLength) bytes long; the limit is \(limits.maxPayloadBytes)"
            )
        }
        guard frameLength <= limits.maxFrameBytes else {
            throw SluiceError(
                .frameTooLarge, "the frame is \(frameLength) bytes long; the limit is \(limits.maxFrameBytes)")
        }
    }

    func write(into bytes: inout [UInt8], at offset: Int) {
        withUnsafeBytes(of: headerLength.littleEndian) { bytes.replaceSubrange(offset..<offset + 4, with: $0) }
        withUnsafeBytes(of: payloadLength.littleEndian) { bytes.replaceSubrange(offset + 4..<offset + 8, with: $0) }
    }
}
