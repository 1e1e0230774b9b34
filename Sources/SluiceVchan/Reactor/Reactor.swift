internal import CSluiceLinux
public import Logging
import SluiceLocks
public import SluiceSystem
public import SluiceWire
import Synchronization

/// A small epoll loop on its own thread. It owns the readiness descriptors of many vchans (or sockets) and
/// calls each one's handler on its thread when the descriptor is ready. Handlers run briefly and never block;
/// they hand whole frames to Swift concurrency (`VchanFrameChannel`), so the async world is entered once per
/// frame, not once per wake-up.
public final class Reactor: Sendable {
    public typealias Handler = @Sendable () -> Void
    /// Whether the owner of a descriptor has work right now, checked without a system call.
    public typealias Probe = @Sendable () -> Bool

    struct Registration {
        var handler: Handler
        var busyPoll: Probe?
    }

    private let epoll: Epoll
    private let wakeup: EventNotifier
    private let nextToken = Atomic<UInt64>(1)
    private let flags = Flags()
    private let logger: Logger

    private final class Flags: Sendable {
        let stop = Atomic<Bool>(false)
        let done = Atomic<Bool>(false)
        let handlers = LockedValue<[UInt64: Registration]>([:])
    }

    /// The busy-poll window: 50 µs, or `SLUICE_BUSY_POLL_US` from the environment (0 turns it off; on a machine
    /// with few cores and many Sluice processes, spinning can cost more than the wake-ups it saves).
    public static let defaultBusyPollMicroseconds: Int = {
        guard let text = getenv("SLUICE_BUSY_POLL_US"), let value = Int(String(cString: text)), value >= 0 else {
            return 50
        }
        return min(value, 10_000)
    }()

    /// - Parameter busyPollMicroseconds: after a round of events, how long the thread keeps checking the
    ///   active registrations' `busyPoll` probes before it sleeps in epoll_wait. A reply that arrives within
    ///   that time is handled without a wake-up (two system calls and a context switch saved); 0 disables it.
    public init(logger: Logger, busyPollMicroseconds: Int = Reactor.defaultBusyPollMicroseconds) throws(SluiceError) {
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
                var active: [Registration] = []
                for event in events where event.token != 0 {
                    if let registration = flags.handlers.withLock({ $0[event.token] }) {
                        registration.handler()
                        if registration.busyPoll != nil { active.append(registration) }
                    }
                }
                if !active.isEmpty && busyPollMicroseconds > 0 {
                    Self.busyPoll(active, nanoseconds: UInt64(busyPollMicroseconds) * 1_000)
                }
            }
            flags.done.store(true, ordering: .releasing)
        }
    }

    /// Spins over the registrations that just had events, calling a handler again as soon as its probe
    /// reports work, until `nanoseconds` pass with none, and never for more than twenty windows in all: the
    /// descriptors that are not in `active` wait for epoll meanwhile, so a probe that always reports work (a
    /// channel that cannot take what it has) must not keep them waiting.
    private static func busyPoll(_ active: [Registration], nanoseconds: UInt64) {
        let start = MonotonicClock.nanoseconds
        let hardStop = start + max(nanoseconds * 20, 1_000_000)
        var deadline = start + nanoseconds
        var round = 0
        while true {
            for registration in active where registration.busyPoll?() == true {
                registration.handler()
                deadline = MonotonicClock.nanoseconds + nanoseconds
            }
            round += 1
            if round & 63 == 0 {
                let now = MonotonicClock.nanoseconds
                if now > deadline || now > hardStop { return }
            }
            Spin.relax()
        }
    }

    /// Calls `handler` on the reactor thread whenever `descriptor` is readable (level-triggered: the handler
    /// must consume what made it ready, or unregister). With `busyPoll`, the reactor also calls the handler when
    /// the probe reports work during its busy-poll window. Returns the token to unregister with.
    public func register(_ descriptor: FileDescriptor, busyPoll: Probe? = nil, handler: @escaping Handler)
        throws(SluiceError)
        -> UInt64
    {
        let token = nextToken.wrappingAdd(1, ordering: .relaxed).oldValue
        flags.handlers.withLock { $0[token] = Registration(handler: handler, busyPoll: busyPoll) }
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

enum Spin {
    static func relax() { sluice_cpu_relax() }
}
