import Foundation
import SluiceSystem
import SluiceTesting
import SluiceVchan
import SluiceWire
import Testing

/// A client of a local vchan gets its descriptors from a server it may not trust (a caller serves its calls' data
/// channels): here a fake broker hands over whatever a hostile server could, and the client must refuse each before it
/// maps, reads or waits on anything.
@Suite("A vchan client refuses descriptors that are not a vchan's", .serialized)
struct HostileServerTests {
    /// A broker stand-in that answers one `connect` with `descriptors`.
    static func connect(receiving descriptors: [FileDescriptor]) throws -> SluiceError? {
        let directory = try TemporaryDirectory(prefix: "sluice-fake-broker")
        defer { directory.remove() }
        let path = directory.path + "/broker.sock"
        let listener = try UnixSocket.listen(at: path, kind: .datagram)
        defer { listener.close() }
        let rendezvous = try VchanRendezvous(path: path)
        let connection = DatagramSocket(descriptor: try UnixSocket.accept(listener))
        defer { connection.descriptor.close() }
        let server = Thread {
            _ = try? connection.receive(maxBytes: 16)
            try? connection.send([0, 0, 0, 0], descriptors: descriptors)
        }
        server.start()
        do {
            _ = try LocalVchan.client(rendezvous: rendezvous, server: .admin, port: VchanPort(rawValue: 700)!)
            return nil
        } catch {
            return error
        }
    }

    static func valid() throws -> [FileDescriptor] {
        [
            try SharedMemory.create(name: "test", size: 4_096), try EventNotifier.create().descriptor,
            try EventNotifier.create().descriptor, try DatagramSocket.pair().1.descriptor,
        ]
    }

    @Test(
        "each wrong descriptor is refused with its code",
        arguments: [
            ("a pipe for an event", 1, "pipe", SluiceError.Code.wrongDescriptor),
            ("unsealed memory", 0, "unsealed", .wrongDescriptor),
            ("memory that is not whole pages", 0, "short", .vchanInvalidRing),
            ("a regular file for memory", 0, "file", .wrongDescriptor),
            ("a socket for memory", 0, "socket", .wrongDescriptor),
            ("an eventfd for the liveness socket", 3, "event", .wrongDescriptor),
        ])
    func refused(label: String, slot: Int, kind: String, code: SluiceError.Code) throws {
        var set = try Self.valid()
        switch kind {
        case "pipe": set[slot] = try SluiceSystem.Pipe().readEnd
        case "unsealed": set[slot] = try SharedMemory.create(name: "test", size: 4_096, sealed: false)
        case "short": set[slot] = try SharedMemory.create(name: "test", size: 100)
        case "file": set[slot] = FileDescriptor(rawValue: open("/proc/self/exe", O_RDONLY | O_CLOEXEC))
        case "socket": set[slot] = try DatagramSocket.pair().0.descriptor
        default: set[slot] = try EventNotifier.create().descriptor
        }
        let error = try Self.connect(receiving: set)
        #expect(error?.code == code, "\(label): \(String(describing: error))")
    }

    @Test("sealed memory of whole pages whose first page announces no valid ring layout is refused")
    func noLayout() throws {
        // Three sealed pages, but the shared page (all zero) announces ring orders of 0.
        var set = try Self.valid()
        set[0] = try SharedMemory.create(name: "test", size: 3 * 4_096)
        #expect(try Self.connect(receiving: set)?.code == .vchanInvalidRing)
    }
}
