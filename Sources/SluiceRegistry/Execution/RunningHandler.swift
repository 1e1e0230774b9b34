internal import CSluiceLinux
public import SluiceSystem
import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// A started handler: an executable's pipes and process, or a socket service's connection.
///
/// The descriptors are this side's ends, non-blocking: write the caller's stdin to `input`, read the handler's
/// stdout from `output` and its stderr from `errorOutput` (nil for a socket service, which has no stderr).
public final class RunningHandler: @unchecked Sendable {
    public enum Kind: Sendable {
        case process(ChildProcess)
        case socket
    }

    public let kind: Kind
    public let entry: ServiceEntry
    public let configuration: ServiceConfiguration
    public private(set) var input: FileDescriptor?
    public private(set) var output: FileDescriptor?
    public private(set) var errorOutput: FileDescriptor?
    /// Readable when the process exits (pidfd); nil for a socket service.
    public let exitDescriptor: FileDescriptor?
    /// The monotonic time (ns) after which the handler is stopped, or nil for none.
    public let deadline: UInt64?
    private let permit: ConcurrencyLimiter.Permit?
    private var reaped: Termination?

    init(
        kind: Kind, entry: ServiceEntry, configuration: ServiceConfiguration, input: FileDescriptor?,
        output: FileDescriptor,
        errorOutput: FileDescriptor?, exitDescriptor: FileDescriptor?, deadline: UInt64?,
        permit: ConcurrencyLimiter.Permit?
    ) {
        self.kind = kind
        self.entry = entry
        self.configuration = configuration
        self.input = input
        self.output = output
        self.errorOutput = errorOutput
        self.exitDescriptor = exitDescriptor
        self.deadline = deadline
        self.permit = permit
    }

    deinit {
        closeInput()
        closeOutput()
        closeErrorOutput()
        exitDescriptor?.close()
        if case .process(let process) = kind, reaped == nil {
            process.signalGroup(SIGKILL)
            _ = try? process.wait()
        }
        permit?.release()
    }

    /// Ends the caller's stdin: closes the pipe, or shuts the socket's write side.
    public func closeInput() {
        guard let input else { return }
        if case .socket = kind {
            _ = sluice_shutdown_write(input.rawValue)
        }
        input.close()
        self.input = nil
    }

    public func closeOutput() {
        output?.close()
        output = nil
    }

    public func closeErrorOutput() {
        errorOutput?.close()
        errorOutput = nil
    }

    /// Whether the process has exited (always true for a socket service once its connection ended).
    public var hasExited: Bool {
        guard case .process(let process) = kind else { return true }
        if reaped != nil { return true }
        do {
            guard let termination = try process.poll() else { return false }
            reaped = termination
            return true
        } catch {
            // waitpid failed (the child is gone, reaped elsewhere): it has certainly exited.
            reaped = .exited(125)
            return true
        }
    }

    /// The process's termination, waiting for it; `.exited(0)` for a socket service.
    public func waitForExit() -> Termination {
        guard case .process(let process) = kind else { return .exited(0) }
        if let reaped { return reaped }
        let termination = (try? process.wait()) ?? .exited(125)
        reaped = termination
        return termination
    }

    /// SIGTERM to the handler's process group, up to `graceMilliseconds` to exit, then SIGKILL. Returns whether
    /// SIGKILL was needed. For a socket service, closes the connection.
    @discardableResult
    public func stop(graceMilliseconds: Int) -> Bool {
        guard case .process(let process) = kind else {
            closeInput()
            closeOutput()
            return false
        }
        if hasExited { return false }
        process.signalGroup(SIGTERM)
        if let exitDescriptor,
            (try? Readiness.wait(exitDescriptor, timeoutMilliseconds: Int32(graceMilliseconds)))?.first == true
        {
            _ = waitForExit()
            return false
        }
        process.signalGroup(SIGKILL)
        _ = waitForExit()
        return true
    }
}
