internal import CSluiceLinux
public import Logging
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// Ends this process when the process that started it ends. `sluice-host` asks its daemon and agents for this by
/// naming itself in `SLUICE_EXIT_WITH_PARENT`: without it, a host killed with SIGKILL (or a crashed test or benchmark)
/// leaves them running, retrying a rendezvous that is gone, and a later run on the same machine competes with them.
///
/// A descriptor for the parent (pidfd) is watched on a thread of its own, so it works whatever the thread that
/// started the child does later (`PR_SET_PDEATHSIG` fires when the parent's *thread* ends, which a host that spawns
/// from short-lived threads would trip over).
public enum ParentWatch {
    public static let environmentName = "SLUICE_EXIT_WITH_PARENT"

    /// What `start` found.
    public enum Outcome: Sendable, Equatable {
        /// `SLUICE_EXIT_WITH_PARENT` is not set: nothing to watch.
        case notAsked
        /// The parent is watched; the process ends when it does.
        case watching(parent: Int32)
        /// The value is no process id (the program should refuse to start).
        case invalid(String)

        /// Why the program should refuse to start, for `.invalid`.
        public var refusal: String? {
            guard case .invalid(let value) = self else { return nil }
            return "\(ParentWatch.environmentName) must be a process id, not '\(value)'"
        }
    }

    /// The environment entry that asks a child to end with this process: `SLUICE_EXIT_WITH_PARENT=<our pid>`.
    public static var askingChildren: String { "\(environmentName)=\(getpid())" }

    /// `start(gone:)` for a program: the parent's end is logged as a notice on `logger`. A program refuses to start
    /// when the outcome has a `refusal`.
    public static func start(logging logger: Logger) throws(SluiceError) -> Outcome {
        try start { [logger] parent in
            logger.notice("the process that started this one (pid \(parent)) is gone: exiting")
        }
    }

    /// Watches the parent named by `SLUICE_EXIT_WITH_PARENT`. When the parent ends, `gone` is
    /// called with its pid (to log a line) and the process exits at once with status 0, without running exit
    /// handlers on other threads' feet. A parent already gone ends the process before this returns.
    public static func start(gone: @escaping @Sendable (Int32) -> Void) throws(SluiceError) -> Outcome {
        try start(getenv(environmentName).map { String(cString: $0) }, gone: gone)
    }

    static func start(_ value: String?, gone: @escaping @Sendable (Int32) -> Void) throws(SluiceError) -> Outcome {
        guard let value else { return .notAsked }
        guard let parent = Int32(value), parent > 1 else { return .invalid(value) }
        let descriptor = sluice_pidfd_open(parent)
        // Opened first, checked second: if the parent is still ours now, the descriptor is for it and not for a
        // process that took its id after it died.
        guard descriptor >= 0, getppid() == parent else {
            if descriptor >= 0 { close(descriptor) }
            gone(parent)
            _exit(0)
        }
        let watched = FileDescriptor(rawValue: descriptor)
        try OSThread.start {
            // poll retries interrupted waits itself; any other error would fail again at once, so it ends the watch
            // instead of spinning a core.
            guard (try? Readiness.wait(watched, timeoutMilliseconds: -1).first) == true else { return }
            gone(parent)
            _exit(0)
        }
        return .watching(parent: parent)
    }
}
