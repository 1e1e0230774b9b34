import SluiceLocks
import SluiceSystem
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// A process's connection to the local vchan broker: what XenStore and the grant table are to a Xen domain.
///
/// The broker gives the connection an identity: the domain whose socket it was opened on. Requests carry no
/// identity of their own, so a process can never claim another domain.
public final class VchanRendezvous: Sendable {
    /// The environment variable that names the rendezvous socket of the domain a process belongs to.
    public static let environmentVariable = "SLUICE_VCHAN_RENDEZVOUS"

    private let connection: FileDescriptor
    private let lock = Lock()
    public let path: String

    public init(path: String) throws(SluiceError) {
        do {
            connection = try UnixSocket.connect(to: path, kind: .datagram)
        } catch {
            throw SluiceError(.vchanNotFound, "no vchan rendezvous at \(path): \(error.message)")
        }
        self.path = path
    }

    /// The rendezvous named by `$SLUICE_VCHAN_RENDEZVOUS`.
    public static func fromEnvironment() throws(SluiceError) -> VchanRendezvous {
        guard let value = getenv(environmentVariable) else {
            throw SluiceError(
                .vchanNotFound,
                "\(environmentVariable) is not set: the local vchan transport needs its domain's rendezvous socket"
            )
        }
        return try VchanRendezvous(path: String(cString: value))
    }

    deinit { connection.close() }

    func register(peer: DomainID, port: VchanPort, descriptors: [FileDescriptor]) throws(SluiceError) {
        _ = try exchange(RendezvousRequest.encode(.register, domain: peer, port: port), sending: descriptors)
    }

    func connect(server: DomainID, port: VchanPort) throws(SluiceError) -> [FileDescriptor] {
        let received = try exchange(RendezvousRequest.encode(.connect, domain: server, port: port), sending: [])
        guard received.count == RendezvousRequest.descriptorCount else {
            for descriptor in received { descriptor.close() }
            throw SluiceError(.vchanInvalidRing, "the rendezvous returned \(received.count) descriptors, not 4")
        }
        return received
    }

    func unregister(peer: DomainID, port: VchanPort) {
        _ = try? exchange(RendezvousRequest.encode(.unregister, domain: peer, port: port), sending: [])
    }

    private func exchange(_ request: [UInt8], sending: [FileDescriptor]) throws(SluiceError) -> [FileDescriptor] {
        let result = lock.withLock {
            Result { () throws(SluiceError) -> [FileDescriptor] in
                let closed = SluiceError(.vchanRefused, "the rendezvous at \(path) closed the connection")
                let socket = DatagramSocket(descriptor: connection)
                var reply: (bytes: [UInt8], descriptors: [FileDescriptor])?
                do throws(SluiceError) {
                    try socket.send(request, descriptors: sending)
                    reply = try socket.receive(maxBytes: 16)
                } catch {
                    // A connection the broker refused at once (a wrong uid, no room) carries one reply saying why,
                    // then ends: the send may meet EPIPE, but the reply is still there to read.
                    guard Readiness.peerGone(connection) else { throw error }
                    reply = try? socket.receive(maxBytes: 16)
                }
                guard let reply else { throw closed }
                guard let status = RendezvousRequest.decodeReply(reply.bytes) else {
                    for descriptor in reply.descriptors { descriptor.close() }
                    throw SluiceError(.vchanInvalidRing, "the rendezvous sent a malformed reply")
                }
                if let code = status {
                    for descriptor in reply.descriptors { descriptor.close() }
                    throw SluiceError(code, Self.explain(code))
                }
                return reply.descriptors
            }
        }
        return try result.get()
    }

    private static func explain(_ code: SluiceError.Code) -> String {
        switch code {
        case .vchanRefused: "the vchan is reserved for another domain"
        case .vchanNotFound: "no vchan server for this domain on that port"
        case .vchanPortInUse: "a vchan server already listens for that peer on that port"
        case .wrongUID: "this process's uid is not its domain's: it may not use this domain's rendezvous"
        case .brokerFull:
            "the vchan broker holds its maximum of connections or offered vchans for this domain; try again once calls end"
        case .wrongDescriptor: "the broker refused a descriptor that is not what a vchan needs"
        case .vchanInvalidRing: "the broker refused the vchan's shared memory"
        default: "the rendezvous refused the request"
        }
    }
}
