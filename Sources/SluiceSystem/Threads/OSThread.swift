internal import CSluiceLinux
public import SluiceWire

/// A detached POSIX thread, for loops that must block in the kernel (an epoll reactor, a rendezvous broker)
/// without holding a thread of Swift's cooperative pool.
public enum OSThread {
    public static func start(_ body: @escaping @Sendable () -> Void) throws(SluiceError) {
        final class Box {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
        let rc = sluice_thread_start(
            { raw in
                guard let raw else { return }
                let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
                box.body()
            }, context)
        if rc != 0 {
            Unmanaged<Box>.fromOpaque(context).release()
            throw SystemCall.error("pthread_create", rc)
        }
    }

    /// Runs a blocking `body` on a thread of its own and returns its result, so that async code never blocks one
    /// of the few cooperative threads (an ask dialog, a toolstack request). If no thread can be started, `body`
    /// runs on the caller's.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            do {
                try start { continuation.resume(returning: body()) }
            } catch {
                continuation.resume(returning: body())
            }
        }
    }
}
