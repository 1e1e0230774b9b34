internal import CSluiceLinux
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// An eventfd: a counter one side increments to wake the other. Non-blocking and close-on-exec.
public struct EventNotifier: Hashable, Sendable {
    public let descriptor: FileDescriptor

    public init(descriptor: FileDescriptor) { self.descriptor = descriptor }

    public static func create() throws(SluiceError) -> EventNotifier {
        let fd = sluice_eventfd(0, 1)
        guard fd >= 0 else { throw SystemCall.error("eventfd", errno) }
        return EventNotifier(descriptor: FileDescriptor(rawValue: fd))
    }

    /// Wakes whoever waits on this notifier.
    public func signal() {
        _ = sluice_eventfd_signal(descriptor.rawValue, 1)
    }

    /// Consumes pending signals. Returns whether there were any.
    @discardableResult
    public func drain() -> Bool {
        var value: UInt64 = 0
        return sluice_eventfd_drain(descriptor.rawValue, &value) == 0
    }
}

/// Waiting for readiness without an event loop.
public enum Readiness {
    /// Waits until `first` or `second` is readable (or hung up), or `timeoutMilliseconds` pass (negative: no
    /// limit). Returns which are ready: `(first, second)`.
    public static func wait(
        _ first: FileDescriptor,
        _ second: FileDescriptor? = nil,
        timeoutMilliseconds: Int32
    ) throws(SluiceError) -> (first: Bool, second: Bool) {
        let mask = sluice_poll_two(first.rawValue, second?.rawValue ?? -1, timeoutMilliseconds)
        guard mask >= 0 else { throw SystemCall.error("poll", errno) }
        return (mask & 1 != 0, mask & 2 != 0)
    }

    /// Whether the peer of a connected socket has closed its end or died.
    public static func peerGone(_ socket: FileDescriptor) -> Bool {
        sluice_socket_peer_gone(socket.rawValue) != 0
    }
}

/// Interrupts (SIGINT, SIGTERM, SIGHUP) as a readable descriptor, so a poll loop can react to them in order.
public enum InterruptSignals {
    /// Blocks the three signals for the calling thread (do it before starting other threads) and returns a
    /// descriptor that becomes readable when one arrives.
    public static func descriptor() throws(SluiceError) -> FileDescriptor {
        let fd = sluice_interrupt_signalfd()
        guard fd >= 0 else { throw SystemCall.error("signalfd", errno) }
        return FileDescriptor(rawValue: fd)
    }

    /// The signal waiting on a descriptor from `descriptor()`, consumed; nil if none is (or it is not a signalfd).
    public static func take(_ descriptor: FileDescriptor) -> Int32? {
        let signal = sluice_signalfd_take(descriptor.rawValue)
        return signal > 0 ? signal : nil
    }
}
