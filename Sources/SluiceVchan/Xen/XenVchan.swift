internal import CXenVchan
public import SluiceSystem
public import SluiceWire
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The Xen backend: libxenvchan itself, through the CXenVchan shim.
///
/// Paths follow Qubes' libvchan-xen convention: a server for peer P on port N writes its ring reference and event
/// channel under `data/vchan/P/N` in its own xenstore directory; the client of domain C reads them from
/// `/local/domain/S/data/vchan/C/N`. Outside Xen, opening fails at once with `xen-unavailable` (508).
public final class XenVchan: Vchan, @unchecked Sendable {
    public let peer: DomainID
    public let port: VchanPort
    private let handle: UnsafeMutablePointer<libxenvchan>
    private let closed = Atomic<Bool>(false)
    private let blocking = Atomic<Bool>(true)
    private let readRingBytes: Int
    private let writeRingBytes: Int

    public static func server(peer: DomainID, port: VchanPort, readMinimum: Int, writeMinimum: Int) throws(SluiceError)
        -> XenVchan
    {
        guard readMinimum <= 1 << VchanInterface.maxOrder, writeMinimum <= 1 << VchanInterface.maxOrder else {
            throw SluiceError(.ringTooLarge, "a vchan ring is at most \(1 << VchanInterface.maxOrder) bytes")
        }
        errno = 0
        let path = "data/vchan/\(peer.rawValue)/\(port.rawValue)"
        guard let handle = libxenvchan_server_init(nil, Int32(peer.rawValue), path, readMinimum, writeMinimum) else {
            throw unavailable("libxenvchan_server_init", errno)
        }
        return XenVchan(peer: peer, port: port, handle: handle)
    }

    public static func client(server: DomainID, port: VchanPort) throws(SluiceError) -> XenVchan {
        errno = 0
        let own = sluice_xen_own_domid()
        guard own >= 0 else { throw unavailable("xenstore read of domid", errno) }
        let path = "/local/domain/\(server.rawValue)/data/vchan/\(own)/\(port.rawValue)"
        guard let handle = libxenvchan_client_init(nil, Int32(server.rawValue), path) else {
            let code = errno
            // A node that does not exist yet under a directory this domain may not list reads as EACCES.
            if code == ENOENT || code == EACCES || code == 0 {
                throw SluiceError(.vchanNotFound, "no vchan server at \(path) (libxenvchan_client_init failed)")
            }
            throw unavailable("libxenvchan_client_init", code)
        }
        return XenVchan(peer: server, port: port, handle: handle)
    }

    private static func unavailable(_ call: String, _ code: Int32) -> SluiceError {
        let missing = access("/dev/xen/gntalloc", F_OK) != 0 || access("/dev/xen/evtchn", F_OK) != 0
        if missing {
            return SluiceError(
                .xenUnavailable,
                "\(call) failed (errno \(code)): this machine is not a Xen domain (no /dev/xen/gntalloc or /dev/xen/evtchn, or no xenstore). Use the local transport (--transport local) instead."
            )
        }
        return SluiceError(.systemCallFailed, "\(call) failed: \(String(cString: strerror(code))) (errno \(code))")
    }

    private init(peer: DomainID, port: VchanPort, handle: UnsafeMutablePointer<libxenvchan>) {
        self.peer = peer
        self.port = port
        self.handle = handle
        readRingBytes = 1 << Int(handle.pointee.read.order)
        writeRingBytes = 1 << Int(handle.pointee.write.order)
        sluice_xenvchan_set_blocking(handle, 1)
    }

    deinit { close() }

    public var isBlocking: Bool {
        get { blocking.load(ordering: .relaxed) }
        set {
            blocking.store(newValue, ordering: .relaxed)
            sluice_xenvchan_set_blocking(handle, newValue ? 1 : 0)
        }
    }

    public var maxDatagramBytes: Int { writeRingBytes }
    public var receiveRingBytes: Int { readRingBytes }

    private func check() throws(SluiceError) {
        guard !closed.load(ordering: .acquiring) else {
            throw SluiceError(.channelClosed, "this end of the vchan is closed")
        }
    }

    public func send(_ bytes: UnsafeRawBufferPointer) throws(SluiceError) -> Bool {
        try check()
        guard bytes.count <= maxDatagramBytes else {
            throw SluiceError(
                .datagramTooLarge, "a \(bytes.count)-byte datagram cannot fit a \(maxDatagramBytes)-byte ring")
        }
        let n = libxenvchan_send(handle, bytes.baseAddress, bytes.count)
        if n < 0 { throw SluiceError(.channelClosed, "the peer closed the vchan") }
        return n > 0 || bytes.isEmpty
    }

    public func receive(into buffer: UnsafeMutableRawBufferPointer) throws(SluiceError) -> Bool {
        try check()
        guard buffer.count <= readRingBytes else {
            throw SluiceError(
                .datagramTooLarge, "a \(buffer.count)-byte datagram cannot fit a \(readRingBytes)-byte ring")
        }
        let n = libxenvchan_recv(handle, buffer.baseAddress, buffer.count)
        if n < 0 { throw SluiceError(.channelClosed, "the peer closed the vchan") }
        return n > 0 || buffer.isEmpty
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(SluiceError) -> Int {
        try check()
        let n = libxenvchan_write(handle, bytes.baseAddress, bytes.count)
        if n < 0 { throw SluiceError(.channelClosed, "the peer closed the vchan") }
        return Int(n)
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(SluiceError) -> Int {
        try check()
        let n = libxenvchan_read(handle, buffer.baseAddress, buffer.count)
        if n < 0 { throw SluiceError(.channelClosed, "the peer closed the vchan") }
        return Int(n)
    }

    public var isReadable: Bool { dataReady > 0 }

    public var dataReady: Int { closed.load(ordering: .acquiring) ? 0 : Int(libxenvchan_data_ready(handle)) }
    public var bufferSpace: Int { closed.load(ordering: .acquiring) ? 0 : Int(libxenvchan_buffer_space(handle)) }

    public var readinessDescriptor: FileDescriptor {
        get throws(SluiceError) { FileDescriptor(rawValue: libxenvchan_fd_for_select(handle)) }
    }

    public func wait() throws(SluiceError) {
        guard libxenvchan_wait(handle) == 0 else { throw SluiceError(.systemCallFailed, "libxenvchan_wait failed") }
    }

    public func consumeEvents() {
        // libxenvchan_wait blocks when nothing is pending, so look first.
        if (try? Readiness.wait(FileDescriptor(rawValue: libxenvchan_fd_for_select(handle)), timeoutMilliseconds: 0))?
            .first == true
        {
            _ = libxenvchan_wait(handle)
        }
    }

    public var state: VchanState {
        if closed.load(ordering: .acquiring) { return .closed }
        return VchanState(rawValue: UInt8(clamping: libxenvchan_is_open(handle))) ?? .closed
    }

    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        libxenvchan_close(handle)
    }
}
