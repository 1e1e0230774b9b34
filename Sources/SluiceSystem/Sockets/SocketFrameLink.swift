public import SluiceWire

/// Frames over a SOCK_SEQPACKET UNIX socket (the client channel between a caller and its agent): one datagram
/// per frame, as on a vchan.
public struct SocketFrameLink: Sendable {
    public let socket: DatagramSocket
    public let encoder: FrameEncoder
    public let decoder: FrameDecoder

    public init(socket: DatagramSocket, receiving: Direction, limits: WireLimits = .default) {
        self.socket = socket
        decoder = FrameDecoder(direction: receiving, limits: limits)
        encoder = FrameEncoder(direction: receiving.reversed, limits: limits)
    }

    public func send(_ message: Message) throws(SluiceError) {
        try socket.send(try encoder.encode(message))
    }

    /// The next frame, or nil when the peer closed the socket.
    public func receive() throws(SluiceError) -> Message? {
        guard let datagram = try socket.receive(maxBytes: decoder.limits.maxFrameBytes) else { return nil }
        for descriptor in datagram.descriptors { descriptor.close() }
        return try decoder.decode(datagram: datagram.bytes)
    }
}
