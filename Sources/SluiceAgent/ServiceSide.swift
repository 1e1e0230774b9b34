public import Logging
import SluiceLocks
public import SluiceRegistry
import SluiceSystem
public import SluiceVchan
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// The service side of one call, in the target domain: meet the caller on the data channel, start the handler
/// through the registry, pump its streams, send its exit status, and account for the call.
public enum ServiceSide {
    /// How long the service side keeps trying to reach the caller's data channel.
    public static let connectTimeoutMilliseconds = 10_000

    public static func run(
        _ order: ExecOrder, inAdminDomain: Bool, transport: VchanTransport, launcher: HandlerLauncher,
        control: RunningCall = RunningCall(), logger: Logger
    ) -> CallReport {
        TraceMarks.mark("service: thread")
        var report = CallReport(call: order.call, exitCode: 125, bytesIn: 0, bytesOut: 0)
        let vchan: any Vchan
        do {
            vchan =
                order.rendezvous.role == .server
                ? try serve(order.rendezvous, transport: transport)
                : try transport.client(
                    server: order.rendezvous.domain, port: order.rendezvous.port,
                    retryingFor: connectTimeoutMilliseconds, stop: { control.isCancelled })
        } catch {
            logger.warning("call \(order.call): cannot reach the caller's data channel: \(error)")
            return report
        }
        defer { if order.rendezvous.role == .server { vchan.closeAfterPeer() } else { vchan.close() } }
        TraceMarks.mark("service: connected")
        let link = VchanFrameLink(vchan: vchan, receiving: .callerToService)
        do {
            try link.send(.hello(.current))
            guard case .hello(let peer)? = try link.receive(timeoutMilliseconds: 10_000) else {
                throw SluiceError(.unsupportedVersion, "the caller sent no hello")
            }
            _ = try Hello.current.negotiate(with: peer)
        } catch {
            logger.warning("call \(order.call): data channel handshake failed: \(error)")
            return report
        }
        TraceMarks.mark("service: hello")
        // The daemon may have said the call is over while its caller was being reached: no handler starts then.
        guard !control.isCancelled else {
            try? link.send(.eof(.stdout))
            try? link.send(.eof(.stderr))
            try? link.send(.exit(ExitStatus(code: 125, reason: .cancelled)))
            return report
        }
        let context = CallContext(
            call: order.serviceCall, source: order.source, requestedTarget: order.requestedTarget, user: order.user,
            callID: order.call, inAdminDomain: inAdminDomain, timeoutMilliseconds: order.timeoutMilliseconds)
        let handler: RunningHandler
        let pump: HandlerPump
        do {
            handler = try launcher.start(context)
            pump = try HandlerPump()
        } catch {
            let notFound = error.code == .serviceNotFound
            let message =
                notFound
                ? "Service \(order.serviceCall.fullName) not found\n"
                : "Service \(order.serviceCall.fullName) failed: \(error.message)\n"
            try? link.send(.data(DataChunk(stream: .stderr, bytes: Array(message.utf8))))
            try? link.send(.eof(.stdout))
            try? link.send(.eof(.stderr))
            let status = ExitStatus(code: notFound ? 127 : 125, reason: notFound ? .serviceNotFound : .serviceFailed)
            try? link.send(.exit(status))
            // A missing service is the caller's business; a handler that cannot start (no descriptors, no memory,
            // a broken executable) is the administrator's, so it is logged at the default level.
            let line: Logger.Message =
                "call \(order.call): \(order.serviceCall.fullName) from \(order.source): \(error)"
            if notFound { logger.info(line) } else { logger.warning(line) }
            report.exitCode = status.code
            return report
        }
        TraceMarks.mark("service: handler started")
        control.attach(pump)
        let result = pump.run(handler, input: ChannelInput(link, pump: pump), output: ChannelOutput(link))
        TraceMarks.mark("service: handler done")
        try? link.send(.exit(result.status))
        report.exitCode = result.status.code
        report.bytesIn = result.bytesIn
        report.bytesOut = result.bytesOut
        return report
    }

    /// Serves the data channel for the caller (calls into the admin domain) and waits for it to connect.
    static func serve(_ meeting: Rendezvous, transport: VchanTransport) throws(SluiceError) -> any Vchan {
        let size = VchanFrameLink.dataRingBytes(for: transport)
        let vchan = try transport.server(
            peer: meeting.domain, port: meeting.port, readMinimum: size, writeMinimum: size)
        do throws(SluiceError) {
            try vchan.waitForClient(timeoutMilliseconds: connectTimeoutMilliseconds)
        } catch {
            vchan.close()
            throw error
        }
        return vchan
    }
}

/// The caller's stdin, from `data` frames.
final class ChannelInput: HandlerInput {
    let link: VchanFrameLink
    let pump: HandlerPump
    private var pending: [UInt8] = []
    private var offset = 0

    init(_ link: VchanFrameLink, pump: HandlerPump) {
        self.link = link
        self.pump = pump
    }

    var readiness: FileDescriptor? { try? link.vchan.readinessDescriptor }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(SluiceError) -> Int? {
        // The pump polls the vchan's level-triggered readiness: consume the signal before looking at the ring (in
        // that order, so nothing written after the look is missed), or the poll would spin.
        if offset == pending.count { link.vchan.consumeEvents() }
        while offset == pending.count {
            let message: Message?
            do {
                message = try link.receiveIfReady()
            } catch {
                // The caller went away: the end of its input. Anything else (a malformed frame) fails the call.
                if error.code == .channelClosed { return 0 }
                throw error
            }
            switch message {
            case nil: return nil
            case .data(let chunk)?:
                pending = chunk.bytes
                offset = 0
            case .eof(.stdin)?: return 0
            case .cancel?:
                pump.cancel()
                return nil
            case .ping(let nonce)?:
                try link.send(.pong(nonce))
            default:
                break
            }
        }
        let count = min(buffer.count, pending.count - offset)
        pending.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: count) }
        offset += count
        return count
    }
}

/// The handler's stdout and stderr, as `data` and `eof` frames.
final class ChannelOutput: HandlerOutput {
    let link: VchanFrameLink
    init(_ link: VchanFrameLink) { self.link = link }
    func write(_ stream: StreamID, _ bytes: UnsafeRawBufferPointer) throws(SluiceError) { try link.send(stream, bytes) }
    func finish(_ stream: StreamID) throws(SluiceError) { try link.send(.eof(stream)) }
}

/// One call an agent runs for the daemon, which the daemon may cancel at any point: before its caller is reached (the
/// service side then gives up at once instead of retrying for its connect timeout), or while its handler runs.
public final class RunningCall: Sendable {
    private let state = LockedValue<(cancelled: Bool, pump: HandlerPump?)>((false, nil))

    public init() {}

    public var isCancelled: Bool { state.withLock { $0.cancelled } }

    /// The call's handler started; a cancel that came first stops it at once.
    func attach(_ pump: HandlerPump) {
        let cancelled = state.withLock { state -> Bool in
            state.pump = pump
            return state.cancelled
        }
        if cancelled { pump.cancel() }
    }

    /// Cancels the call: its handler gets SIGTERM, a grace period, then SIGKILL; a handler not started yet never is.
    public func cancel() {
        let pump = state.withLock { state -> HandlerPump? in
            state.cancelled = true
            return state.pump
        }
        pump?.cancel()
    }
}
