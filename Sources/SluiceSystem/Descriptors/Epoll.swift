internal import CSluiceLinux
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// An epoll instance: level-triggered readiness for many descriptors, each tagged with a 64-bit token.
public struct Epoll: Sendable {
    public let descriptor: FileDescriptor

    public struct Event: Sendable, Hashable {
        public var token: UInt64
        public var readable: Bool
        public var writable: Bool
        /// Hang-up or error: the peer is gone.
        public var hangUp: Bool
    }

    static let input = UInt32(SLUICE_EPOLLIN)
    static let output = UInt32(SLUICE_EPOLLOUT)
    static let peerClosed = UInt32(SLUICE_EPOLLRDHUP)
    static let failure = UInt32(SLUICE_EPOLLHUP) | UInt32(SLUICE_EPOLLERR) | UInt32(SLUICE_EPOLLRDHUP)

    public init() throws(SluiceError) {
        let fd = sluice_epoll_create()
        guard fd >= 0 else { throw SystemCall.error("epoll_create1", errno) }
        descriptor = FileDescriptor(rawValue: fd)
    }

    /// Watches `fd` for input (and, if asked, output), reporting `token`.
    public func add(_ fd: FileDescriptor, token: UInt64, writable: Bool = false) throws(SluiceError) {
        var events = Self.input | Self.peerClosed
        if writable { events |= Self.output }
        guard sluice_epoll_ctl(descriptor.rawValue, 1, fd.rawValue, events, token) == 0 else {
            throw SystemCall.error("epoll_ctl(ADD)", errno)
        }
    }

    public func remove(_ fd: FileDescriptor) {
        _ = sluice_epoll_ctl(descriptor.rawValue, 2, fd.rawValue, 0, 0)
    }

    /// Waits up to `timeoutMilliseconds` (negative: forever) for at most 64 events.
    public func wait(timeoutMilliseconds: Int32) throws(SluiceError) -> [Event] {
        var raw = [sluice_epoll_event](repeating: sluice_epoll_event(), count: 64)
        let n = raw.withUnsafeMutableBufferPointer {
            sluice_epoll_wait(descriptor.rawValue, $0.baseAddress, 64, timeoutMilliseconds)
        }
        if n < 0 {
            if errno == EINTR { return [] }
            throw SystemCall.error("epoll_wait", errno)
        }
        return raw[..<Int(n)].map { (event: sluice_epoll_event) -> Event in
            let bits = event.events
            return Event(
                token: event.data,
                readable: bits & Self.input != 0,
                writable: bits & Self.output != 0,
                hangUp: bits & Self.failure != 0
            )
        }
    }

    public func close() { descriptor.close() }
}
