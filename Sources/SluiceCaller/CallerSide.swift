public import SluiceSystem
import SluiceVchan
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// The caller's side of one call: ask the local agent, then (if allowed) serve the data channel the target's
/// agent connects to, and move stdin, stdout and stderr until the exit status arrives.
///
/// Exit codes follow qrexec: the handler's code, 126 if refused, 127 for an unknown service (sent by the target),
/// 125 for any other failure, 128+n when the handler died by signal n.
public enum CallerSide {
    public struct Endpoints: Sendable {
        /// The agent's client socket.
        public var agentSocket: String
        /// This domain's vchan rendezvous socket.
        public var rendezvousPath: String

        public init(agentSocket: String, rendezvousPath: String) {
            self.agentSocket = agentSocket
            self.rendezvousPath = rendezvousPath
        }

        /// The agent socket from `--agent`, `$SLUICE_AGENT_SOCKET` or `/run/sluice/agent.sock`; the rendezvous from
        /// `$SLUICE_VCHAN_RENDEZVOUS` or `vchan.sock` next to the agent socket.
        public static func resolve(agent: String?) -> Endpoints {
            let socket = agent ?? environment("SLUICE_AGENT_SOCKET") ?? "/run/sluice/agent.sock"
            let directory = socket.lastIndex(of: "/").map { String(socket[..<$0]) } ?? "."
            return Endpoints(
                agentSocket: socket,
                rendezvousPath: environment(VchanRendezvous.environmentVariable) ?? directory + "/vchan.sock")
        }

        static func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
    }

    /// How long the caller waits for the target's agent to connect the data channel.
    public static let connectTimeoutMilliseconds: Int32 = 10_000

    /// Runs `call` on `target`, reading `input` (nil: no stdin) and writing `output` and `errorOutput`.
    ///
    /// When `cancel` becomes readable (a signalfd for SIGINT, an eventfd), the call is cancelled: a `cancel` frame
    /// reaches the target, whose handler gets SIGTERM, a grace period, then SIGKILL; the exit status still comes back.
    public static func run(
        _ call: ServiceCall, target: TargetName, endpoints: Endpoints, input: FileDescriptor?, output: FileDescriptor,
        errorOutput: FileDescriptor, cancel: FileDescriptor? = nil
    ) -> Int32 {
        func fail(_ message: String, _ code: Int32 = 125) -> Int32 {
            try? errorOutput.writeAll(Array((message + "\n").utf8))
            return code
        }
        let control: SocketFrameLink
        let order: ConnectOrder
        do {
            let socket = try UnixSocket.connect(to: endpoints.agentSocket, kind: .datagram)
            control = SocketFrameLink(socket: DatagramSocket(descriptor: socket), receiving: .agentToClient)
            try control.send(.hello(.current))
            guard case .hello(let peer)? = try control.receive() else {
                return fail("sluice: the agent did not answer")
            }
            _ = try Hello.current.negotiate(with: peer)
            try control.send(.call(CallRequest(id: RequestID(rawValue: 1)!, call: call, target: target)))
            switch try control.receive() {
            case .connect(let connect)?:
                order = connect
            case .refused(let refusal)?:
                if refusal.code == .refusedByPolicy { return fail("Request refused", 126) }
                return fail("sluice: \(refusal.message)")
            default:
                return fail("sluice: the agent closed the request")
            }
        } catch {
            return fail("sluice: \(error)")
        }
        defer { control.socket.descriptor.close() }
        do {
            let rendezvous = try VchanRendezvous(path: endpoints.rendezvousPath)
            let vchan = try LocalVchan.server(
                rendezvous: rendezvous, peer: order.rendezvous.domain, port: order.rendezvous.port,
                readMinimum: VchanFrameLink.dataRingBytes, writeMinimum: VchanFrameLink.dataRingBytes)
            defer { vchan.close() }
            let descriptor = try vchan.readinessDescriptor
            let deadline = MonotonicClock.milliseconds + Int(connectTimeoutMilliseconds)
            while vchan.state == .waitingForClient {
                guard MonotonicClock.milliseconds < deadline else { return fail("sluice: the target did not connect") }
                _ = try Readiness.wait(descriptor, timeoutMilliseconds: 20)
                vchan.consumeEvents()
            }
            let link = VchanFrameLink(vchan: vchan, receiving: .serviceToCaller)
            try link.send(.hello(.current))
            return try pump(link, input: input, output: output, errorOutput: errorOutput, cancel: cancel)
        } catch {
            return fail("sluice: \(error)")
        }
    }

    /// One thread, one poll loop: stdin into `data` frames (held back while the ring is full), frames out to
    /// stdout and stderr, until `exit`.
    static func pump(
        _ link: VchanFrameLink, input: FileDescriptor?, output: FileDescriptor, errorOutput: FileDescriptor,
        cancel: FileDescriptor?
    ) throws(SluiceError) -> Int32 {
        var inputOpen = input != nil
        if !inputOpen { try link.send(.eof(.stdin)) }
        var pendingFrame: [UInt8]?
        var buffer = [UInt8](repeating: 0, count: VchanFrameLink.chunkBytes)
        var helloSeen = false
        var cancelled = false
        let readiness = try link.vchan.readinessDescriptor
        /// Sends the cancel frame once, when `cancel` has become readable.
        func checkCancel() throws(SluiceError) {
            guard let cancel, !cancelled, try Readiness.wait(cancel, timeoutMilliseconds: 0).first else { return }
            cancelled = true
            try link.send(.cancel(RequestID(rawValue: 1)!))
        }
        while true {
            while let message = try receive(link) {
                switch message {
                case .hello(let peer) where !helloSeen:
                    _ = try Hello.current.negotiate(with: peer)
                    helloSeen = true
                case .data(let chunk):
                    try (chunk.stream == .stderr ? errorOutput : output).writeAll(chunk.bytes)
                case .eof:
                    break
                case .exit(let status):
                    return Int32(status.code)
                case .ping(let nonce):
                    try link.send(.pong(nonce))
                default:
                    throw SluiceError(.wrongDirection, "unexpected \(message.kind.rawValue) on the data channel")
                }
            }
            if let frame = pendingFrame {
                if try link.vchan.send(frame) { pendingFrame = nil }
            }
            try checkCancel()
            // While a cancel descriptor is armed, wake up every 50 ms to look at it.
            let wait: Int32 = cancel != nil && !cancelled ? 50 : -1
            var stdinReady = false
            if inputOpen, pendingFrame == nil, let input {
                let ready = try Readiness.wait(input, readiness, timeoutMilliseconds: wait)
                stdinReady = ready.first
                if ready.second { link.vchan.consumeEvents() }
            } else {
                if try Readiness.wait(readiness, timeoutMilliseconds: wait).first { link.vchan.consumeEvents() }
            }
            if stdinReady, let input {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(input.rawValue, $0.baseAddress, $0.count) }
                if n > 0 {
                    let frame = try link.encoder.encode(.data(DataChunk(stream: .stdin, bytes: Array(buffer[..<n]))))
                    if try !link.vchan.send(frame) { pendingFrame = frame }
                } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                    inputOpen = false
                    try link.send(.eof(.stdin))
                }
            }
        }
    }

    static func receive(_ link: VchanFrameLink) throws(SluiceError) -> Message? {
        do {
            return try link.receiveIfReady()
        } catch {
            if error.code == .channelClosed {
                throw SluiceError(.channelClosed, "the target closed the call without an exit status")
            }
            throw error
        }
    }
}
