public import Logging
public import SluiceSystem
public import SluiceWire
import Synchronization

/// A small epoll loop on its own thread. It owns the readiness descriptors of many vchans (or sockets) and
/// calls each one's handler on its thread when the descriptor is ready. Handlers run briefly and never block;
/// they hand whole frames to Swift concurrency (`VchanFrameChannel`), so the async world is entered once per
/// frame, not once per wake-up.
public final class Reactor: Sendable {
    public typealias Handler = @Sendable () -> Void

    private let epoll: Epoll
    private let wakeup: EventNotifier
    private let nextToken = Atomic<UInt64>(1)
    private let flags = Flags()
    private let logger: Logger

    private final class Flags: Sendable {
        let stop = Atomic<Bool>(false)
        let done = Atomic<Bool>(false)
        let handlers = Mutex<[UInt64: Handler]>([:])
    }

    public init(logger: Logger) throws(SluiceError) {
        epoll = try Epoll()
        wakeup = try EventNotifier.create()
        self.logger = logger
        try epoll.add(wakeup.descriptor, token: 0)
        let epoll = epoll
        let flags = flags
        let logger = logger
        try OSThread.start { [epoll, flags] in
            while !flags.stop.load(ordering: .acquiring) {
                let events: [Epoll.Event]
                do {
                    events = try epoll.wait(timeoutMilliseconds: -1)
                } catch {
                    logger.error("reactor: \(error)")
                    break
                }
                for event in events where event.token != 0 {
                    if let handler = flags.handlers.withLock({ $0[event.token] }) { handler() }
                }
            }
            flags.done.store(true, ordering: .releasing)
        }
    }

    /// Calls `handler` on the reactor thread whenever `descriptor` is readable (level-triggered: the handler
    /// must consume what made it ready, or unregister). Returns the token to unregister with.
    public func register(_ descriptor: FileDescriptor, handler: @escaping Handler) throws(SluiceError) -> UInt64 {
        let token = nextToken.wrappingAdd(1, ordering: .relaxed).oldValue
        flags.handlers.withLock { $0[token] = handler }
        do {
            try epoll.add(descriptor, token: token)
        } catch {
            flags.handlers.withLock { $0[token] = nil }
            throw error
        }
        return token
    }

    /// Stops watching `descriptor`. After it returns the handler may still be running once on the reactor
    /// thread, but is never called again.
    public func unregister(_ token: UInt64, descriptor: FileDescriptor) {
        epoll.remove(descriptor)
        flags.handlers.withLock { $0[token] = nil }
    }

    /// Stops the thread. Registered descriptors are not closed.
    public func shutdown() {
        guard !flags.stop.exchange(true, ordering: .acquiringAndReleasing) else { return }
        wakeup.signal()
        while !flags.done.load(ordering: .acquiring) { usleepShort() }
        epoll.close()
        wakeup.descriptor.close()
    }

    deinit { shutdown() }
}

#if canImport(Glibc)
    import Glibc
    func usleepShort() { usleep(500) }
#endif
