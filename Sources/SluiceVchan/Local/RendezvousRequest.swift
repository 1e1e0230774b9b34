import SluiceWire

/// The rendezvous protocol between a process and the `LocalVchanBroker`, over a SOCK_SEQPACKET connection to
/// the broker's socket for the process's domain.
///
/// A request is 8 bytes, little-endian: `u16 operation, u16 domain, u16 port, u16 zero`. `domain` is the peer
/// for `register` and `unregister`, the server's domain for `connect`. A reply is a `u32`: 0, or a
/// `SluiceError.Code`. Descriptors travel as SCM_RIGHTS: `register` carries, and a successful `connect` reply
/// returns, four: the sealed memfd, the server's eventfd, the client's eventfd, and the client's end of the
/// liveness socket pair. The requester's own domain is never in a request: the broker knows it from the socket.
enum RendezvousRequest {
    enum Operation: UInt16 {
        case register = 1
        case connect = 2
        case unregister = 3
    }

    static let size = 8
    static let descriptorCount = 4

    static func encode(_ operation: Operation, domain: DomainID, port: VchanPort) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(size)
        for value in [operation.rawValue, domain.rawValue, port.rawValue, 0] {
            withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
        }
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> (Operation, DomainID, VchanPort)? {
        guard bytes.count == size else { return nil }
        func field(_ index: Int) -> UInt16 { UInt16(bytes[index]) | UInt16(bytes[index + 1]) << 8 }
        guard let operation = Operation(rawValue: field(0)), let domain = DomainID(rawValue: field(2)),
            let port = VchanPort(rawValue: field(4)), field(6) == 0
        else { return nil }
        return (operation, domain, port)
    }

    static func reply(_ code: SluiceError.Code?) -> [UInt8] {
        let value = UInt32(code?.rawValue ?? 0).littleEndian
        return withUnsafeBytes(of: value) { Array($0) }
    }

    static func decodeReply(_ bytes: [UInt8]) -> SluiceError.Code?? {
        guard bytes.count == 4 else { return nil }
        let value = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
        guard value <= UInt16.max else { return nil }
        return .some(value == 0 ? nil : SluiceError.Code(rawValue: UInt16(value)))
    }
}
