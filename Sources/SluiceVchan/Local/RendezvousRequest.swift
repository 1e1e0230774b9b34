import SluiceSystem
import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

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

/// The four descriptors of a local vchan, checked for what they must be wherever they arrive from a peer (the broker
/// on `register`, a client on `connect`): a sealed memfd of whole pages within the largest vchan, two eventfds and a
/// SEQPACKET socket. The eventfds are made non-blocking, so a wait on them can never block for ever. Anything else is
/// `wrong-descriptor` (521), or `vchan-invalid-ring` (506) for memory of the wrong size.
enum VchanDescriptors {
    /// The largest shared memory a vchan needs: the shared page and two rings of 1 MiB.
    static let maxMemoryBytes = VchanInterface.pageSize * (1 + 2 * RingPlan.pages(VchanInterface.maxOrder))

    /// Checks `descriptors` (memfd, server eventfd, client eventfd, liveness socket); returns the memory's size.
    @discardableResult
    static func validate(_ descriptors: [FileDescriptor]) throws(SluiceError) -> Int {
        guard descriptors.count == RendezvousRequest.descriptorCount else {
            throw SluiceError(
                .wrongDescriptor,
                "a vchan takes \(RendezvousRequest.descriptorCount) descriptors, not \(descriptors.count)")
        }
        let memory = try DescriptorKind.expect(descriptors[0], "the vchan's shared memory") {
            if case .sealedMemory = $0 { true } else { false }
        }
        guard case .sealedMemory(let size) = memory, size >= VchanInterface.pageSize,
            size % VchanInterface.pageSize == 0, size <= maxMemoryBytes
        else {
            throw SluiceError(.vchanInvalidRing, "the shared memory is \(memory), not 1 to 513 whole pages")
        }
        for (index, role) in [(1, "the server's event"), (2, "the client's event")] {
            _ = try DescriptorKind.expect(descriptors[index], role, makeNonBlocking: true) { $0 == .eventfd }
        }
        _ = try DescriptorKind.expect(descriptors[3], "the liveness socket") {
            $0 == .unixSocket(type: Int32(SOCK_SEQPACKET.rawValue))
        }
        return size
    }
}
