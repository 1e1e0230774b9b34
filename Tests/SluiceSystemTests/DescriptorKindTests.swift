import Foundation
import SluiceSystem
import SluiceWire
import Testing

/// What a descriptor is, from the kernel: the checks every descriptor from a peer goes through.
@Suite("Descriptors are what the kernel says they are")
struct DescriptorKindTests {
    @Test("each kind is told apart")
    func kinds() throws {
        let sealed = try SharedMemory.create(name: "test", size: 8_192)
        let unsealed = try SharedMemory.create(name: "test", size: 4_096, sealed: false)
        let event = try EventNotifier.create().descriptor
        let pipe = try SluiceSystem.Pipe()
        let pair = try DatagramSocket.pair()
        let file = FileDescriptor(rawValue: open("/proc/self/exe", O_RDONLY | O_CLOEXEC))
        let directory = FileDescriptor(rawValue: open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC))
        defer {
            for descriptor in [
                sealed, unsealed, event, pipe.readEnd, pipe.writeEnd, pair.0.descriptor, pair.1.descriptor, file,
                directory,
            ] { descriptor.close() }
        }
        #expect(try DescriptorKind.of(sealed) == .sealedMemory(size: 8_192))
        #expect(try DescriptorKind.of(unsealed) == .unsealedMemory(size: 4_096))
        #expect(try DescriptorKind.of(event) == .eventfd)
        #expect(try DescriptorKind.of(pipe.readEnd) == .pipe)
        #expect(try DescriptorKind.of(pair.0.descriptor) == .unixSocket(type: Int32(SOCK_SEQPACKET.rawValue)))
        #expect(try DescriptorKind.of(file) == .regularFile)
        #expect(try DescriptorKind.of(directory) == .directory)
    }

    @Test("a descriptor that is not what it must be is wrong-descriptor; one that is becomes non-blocking on request")
    func expect() throws {
        let pipe = try SluiceSystem.Pipe()
        defer {
            pipe.readEnd.close()
            pipe.writeEnd.close()
        }
        #expect(throws: SluiceError(.wrongDescriptor, "the peer passed a pipe as an event")) {
            _ = try DescriptorKind.expect(pipe.readEnd, "an event") { $0 == .eventfd }
        }
        // The pipe is blocking: accepted as a pipe, it is made non-blocking, so a read of it can never wait for ever.
        #expect(fcntl(pipe.readEnd.rawValue, F_GETFL) & O_NONBLOCK == 0)
        _ = try DescriptorKind.expect(pipe.readEnd, "a pipe", makeNonBlocking: true) { $0 == .pipe }
        #expect(fcntl(pipe.readEnd.rawValue, F_GETFL) & O_NONBLOCK != 0)
    }
}
