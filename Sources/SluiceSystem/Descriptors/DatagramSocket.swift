internal import CSluiceLinux
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// One end of a connected `SOCK_SEQPACKET` UNIX socket: each `send` is one datagram and each `receive` returns
/// exactly one, like a vchan datagram. Descriptors can travel with a datagram (SCM_RIGHTS).
public struct DatagramSocket: Hashable, Sendable {
    public let descriptor: FileDescriptor

    public init(descriptor: FileDescriptor) { self.descriptor = descriptor }

    /// A connected pair (both ends close-on-exec).
    public static func pair() throws(SluiceError) -> (DatagramSocket, DatagramSocket) {
        var fds: [Int32] = [-1, -1]
        guard sluice_socketpair_seqpacket(&fds) == 0 else { throw SystemCall.error("socketpair", errno) }
        return (
            DatagramSocket(descriptor: FileDescriptor(rawValue: fds[0])),
            DatagramSocket(descriptor: FileDescriptor(rawValue: fds[1]))
        )
    }

    /// Sends one datagram, with up to 16 descriptors attached.
    public func send(_ bytes: [UInt8], descriptors: [FileDescriptor] = []) throws(SluiceError) {
        let raw = descriptors.map(\.rawValue)
        let n = bytes.withUnsafeBytes { buffer in
            raw.withUnsafeBufferPointer { fds in
                sluice_send_with_fds(
                    descriptor.rawValue, buffer.baseAddress, buffer.count, fds.baseAddress, Int32(fds.count))
            }
        }
        guard n == bytes.count else { throw SystemCall.error("sendmsg", n < 0 ? errno : EMSGSIZE) }
    }

    /// Receives one datagram of at most `maxBytes` bytes, or nil at end of file. A longer datagram is an error
    /// (`frame-too-large`), never silently truncated.
    public func receive(maxBytes: Int) throws(SluiceError) -> (bytes: [UInt8], descriptors: [FileDescriptor])? {
        // One spare byte tells a datagram of exactly maxBytes from a longer one that the kernel truncated.
        var buffer = [UInt8](repeating: 0, count: maxBytes + 1)
        var fds = [Int32](repeating: -1, count: 16)
        var count: Int32 = 0
        let n = buffer.withUnsafeMutableBytes { raw in
            fds.withUnsafeMutableBufferPointer { fdBuffer in
                sluice_recv_with_fds(descriptor.rawValue, raw.baseAddress, raw.count, fdBuffer.baseAddress, 16, &count)
            }
        }
        guard n >= 0 else { throw SystemCall.error("recvmsg", errno) }
        if n == 0 { return nil }
        let received = fds[..<Int(count)].map { FileDescriptor(rawValue: $0) }
        guard n <= maxBytes else {
            for descriptor in received { descriptor.close() }
            throw SluiceError(.frameTooLarge, "a datagram is longer than \(maxBytes) bytes")
        }
        buffer.removeSubrange(n...)
        return (buffer, received)
    }
}
