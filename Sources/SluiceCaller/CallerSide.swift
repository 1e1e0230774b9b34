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
        /// This domain's vchan rendezvous socket (local transport).
        public var rendezvousPath: String
        /// Whether data channels use Xen's libxenvchan instead of the local transport.
        public var usesXen: Bool

        public init(agentSocket: String, rendezvousPath: String, usesXen: Bool = false) {
            self.agentSocket = agentSocket
            self.rendezvousPath = rendezvousPath
            self.usesXen = usesXen
        }

        /// The agent socket from `--agent`, `$SLUICE_AGENT_SOCKET` or `/run/sluice/agent.sock`; the rendezvous from
        /// `$SLUICE_VCHAN_RENDEZVOUS` or `vchan.sock` next to the agent socket; the Xen transport when
        /// `$SLUICE_TRANSPORT` is `xen` (or `transport` says so).
        public static func resolve(agent: String?, transport: String? = nil) -> Endpoints {
            let socket = agent ?? environment("SLUICE_AGENT_SOCKET") ?? "/run/sluice/agent.sock"
            let directory = socket.lastIndex(of: "/").map { String(socket[..<$0]) } ?? "."
            return Endpoints(
                agentSocket: socket,
                rendezvousPath: environment(VchanRendezvous.environmentVariable) ?? directory + "/vchan.sock",
                usesXen: (transport ?? environment("SLUICE_TRANSPORT")) == "xen")
        }

        static func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
    }

    /// How long the caller waits for the target's agent to connect the data channel.
    public static let connectTimeoutMilliseconds: Int32 = 10_000

    /// An open call: the request was allowed and the target's agent connected the data channel.
    public final class Connection: @unchecked Sendable {
        let control: SocketFrameLink
        let link: VchanFrameLink
        let serves: Bool

        init(control: SocketFrameLink, link: VchanFrameLink, serves: Bool) {
            self.control = control
            self.link = link
            self.serves = serves
        }

        /// Closes the data channel (as its server, after the target's side has closed) and the request's socket.
        public func close() {
            if serves { link.vchan.closeAfterPeer() } else { link.vchan.close() }
            control.socket.descriptor.close()
        }
    }

    /// Asks the agent for `call` on `target` and, once allowed, serves the data channel and waits for the target to
    /// connect. A refusal throws with its code: `refused-by-policy` (the caller's 126), `too-many-calls`, ...
    /// `cancel` readable (a signalfd for Ctrl-C) ends the wait for the decision or for the target with `cancelled`;
    /// the request's socket then closes, and the agent withdraws it.
    public static func connect(
        _ call: ServiceCall, target: TargetName, endpoints: Endpoints, cancel: FileDescriptor? = nil
    ) throws(SluiceError) -> Connection {
        TraceMarks.mark("caller: start")
        let socket = try UnixSocket.connect(to: endpoints.agentSocket, kind: .datagram)
        let control = SocketFrameLink(socket: DatagramSocket(descriptor: socket), receiving: .agentToClient)
        do throws(SluiceError) {
            // The request follows the hello at once: the agent reads them in order, and a version it cannot
            // speak is still refused before any call (its hello comes back first and is checked here).
            do throws(SluiceError) {
                try control.send(.hello(.current))
                try control.send(.call(CallRequest(id: RequestID(rawValue: 1)!, call: call, target: target)))
            } catch {
                // An agent that refuses this caller (a wrong uid, too many callers) says why, then closes: the reason
                // may already wait to be read.
                if case .error(let report)? = try? control.receive() { throw SluiceError(report.code, report.message) }
                throw error
            }
            // Build the data channel's rings while the daemon decides; they are offered once the peer is known.
            let prepared =
                endpoints.usesXen
                ? nil
                : try LocalVchan.prepareServer(
                    readMinimum: VchanFrameLink.dataRingBytes, writeMinimum: VchanFrameLink.dataRingBytes)
            let answer = try control.receive()
            if case .error(let report)? = answer { throw SluiceError(report.code, report.message) }
            guard case .hello(let peer)? = answer else {
                throw SluiceError(.channelClosed, "the agent did not answer")
            }
            _ = try Hello.current.negotiate(with: peer)
            let order: ConnectOrder
            TraceMarks.mark("caller: call sent")
            if let cancel {
                // The decision may take a while (an ask, a domain to start): an interrupt meanwhile ends the wait.
                let ready = try Readiness.wait(control.socket.descriptor, cancel, timeoutMilliseconds: -1)
                if ready.second && !ready.first {
                    throw SluiceError(.cancelled, "cancelled while waiting for the decision")
                }
            }
            switch try control.receive() {
            case .connect(let connect)?:
                TraceMarks.mark("caller: connect order")
                order = connect
            case .refused(let refusal)?:
                throw SluiceError(refusal.code, refusal.code == .refusedByPolicy ? "Request refused" : refusal.message)
            default:
                throw SluiceError(.channelClosed, "the agent closed the request")
            }
            let vchan: any Vchan
            if order.rendezvous.role == .client {
                // A call into the admin domain: its agent serves, this side connects.
                let transport: VchanTransport =
                    endpoints.usesXen ? .xen : .local(try VchanRendezvous(path: endpoints.rendezvousPath))
                vchan = try transport.client(
                    server: order.rendezvous.domain, port: order.rendezvous.port,
                    retryingFor: Int(connectTimeoutMilliseconds))
            } else if let prepared {
                let rendezvous = try VchanRendezvous(path: endpoints.rendezvousPath)
                vchan = try prepared.offer(
                    rendezvous: rendezvous, peer: order.rendezvous.domain, port: order.rendezvous.port)
            } else {
                vchan = try XenVchan.server(
                    peer: order.rendezvous.domain, port: order.rendezvous.port,
                    readMinimum: VchanFrameLink.xenDataRingBytes, writeMinimum: VchanFrameLink.xenDataRingBytes)
            }
            do throws(SluiceError) {
                TraceMarks.mark("caller: vchan offered")
                // The agent may say meanwhile that the call is over (its target went away): then the wait ends at
                // once instead of at the timeout.
                try vchan.waitForClient(
                    timeoutMilliseconds: Int(connectTimeoutMilliseconds), watching: control.socket.descriptor,
                    cancel: cancel
                ) { () throws(SluiceError) -> Bool in
                    switch try? control.receive() {
                    case .refused(let refusal)?: throw SluiceError(refusal.code, refusal.message)
                    case .some: return true
                    // The agent is gone; the call does not need it any more, so the wait goes on.
                    case nil: return false
                    }
                }
                TraceMarks.mark("caller: target connected")
                let link = VchanFrameLink(vchan: vchan, receiving: .serviceToCaller)
                try link.send(.hello(.current))
                return Connection(control: control, link: link, serves: order.rendezvous.role != .client)
            } catch {
                vchan.close()
                throw error
            }
        } catch {
            socket.close()
            throw error
        }
    }

    /// The exit status a failure to open a call gives: 126 for a policy refusal, 125 for anything else.
    public static func exitStatus(for error: SluiceError) -> Int32 {
        error.code == .refusedByPolicy ? 126 : 125
    }

    /// Runs `call` on `target`, reading `input` (nil: no stdin) and writing `output` and `errorOutput`.
    ///
    /// When `cancel` becomes readable (a signalfd for SIGINT, an eventfd), the call is cancelled: a `cancel` frame
    /// reaches the target, whose handler gets SIGTERM, a grace period, then SIGKILL; the exit status still comes back.
    public static func run(
        _ call: ServiceCall, target: TargetName, endpoints: Endpoints, input: FileDescriptor?, output: FileDescriptor,
        errorOutput: FileDescriptor, cancel: FileDescriptor? = nil
    ) -> Int32 {
        func fail(_ error: SluiceError) -> Int32 {
            let text = error.code == .refusedByPolicy ? error.message : "sluice: \(error.message)"
            try? errorOutput.writeAll(Array((text + "\n").utf8))
            return exitStatus(for: error)
        }
        let connection: Connection
        do {
            connection = try connect(call, target: target, endpoints: endpoints, cancel: cancel)
        } catch {
            // Interrupted before the call started: die as the signal would have (130 for Ctrl-C).
            if error.code == .cancelled, let cancel, let signal = InterruptSignals.take(cancel) { return 128 + signal }
            return fail(error)
        }
        defer { connection.close() }
        do {
            return try pump(
                connection, input: input.map(DescriptorInput.init), output: DescriptorOutput(output, errorOutput),
                cancel: cancel)
        } catch {
            return fail(error)
        }
    }

    /// One thread, one poll loop: stdin into `data` frames (held back while the ring is full), frames out to
    /// stdout and stderr, until `exit`. Returns the exit status.
    public static func pump(
        _ connection: Connection, input: (any CallInput)?, output: any CallOutput, cancel: FileDescriptor?
    ) throws(SluiceError) -> Int32 {
        let link = connection.link
        var inputOpen = input != nil
        var pendingFrame: [UInt8]?
        /// Sends, unless the target has already closed the channel: it may have sent its exit status and gone
        /// (a handler that does not read its stdin can end before the end of stdin is sent). Then nothing more is
        /// sent and the exit status is read from what arrived. Found by the soak: 1 call in 2 500 under load ended
        /// with 125 although its exit status was in the ring.
        func send(_ message: Message) throws(SluiceError) {
            do {
                try link.send(message)
            } catch {
                guard error.code == .channelClosed else { throw error }
                inputOpen = false
                pendingFrame = nil
            }
        }
        func sendFrame(_ frame: [UInt8]) throws(SluiceError) -> Bool {
            do {
                return try link.vchan.send(frame)
            } catch {
                guard error.code == .channelClosed else { throw error }
                inputOpen = false
                return true
            }
        }
        if !inputOpen { try send(.eof(.stdin)) }
        var buffer = [UInt8](repeating: 0, count: VchanFrameLink.chunkBytes)
        var helloSeen = false
        var cancelled = false
        let readiness = try link.vchan.readinessDescriptor
        /// Sends the cancel frame once, when `cancel` has become readable.
        func checkCancel() throws(SluiceError) {
            guard let cancel, !cancelled, try Readiness.wait(cancel, timeoutMilliseconds: 0).first else { return }
            cancelled = true
            try send(.cancel(RequestID(rawValue: 1)!))
        }
        while true {
            while let message = try receive(link) {
                // The target speaks first with hello: nothing it sends before counts (a target that writes to the
                // caller's stdout before agreeing on a version is out of order, and the call fails with 125).
                guard helloSeen || message.kind == .hello else {
                    throw SluiceError(.outOfOrder, "the target sent \(message.kind.rawValue) before hello")
                }
                switch message {
                case .hello(let peer) where !helloSeen:
                    _ = try Hello.current.negotiate(with: peer)
                    helloSeen = true
                case .hello:
                    throw SluiceError(.outOfOrder, "the target sent a second hello")
                case .data(let chunk):
                    try output.write(chunk.stream, chunk.bytes)
                case .eof:
                    break
                case .exit(let status):
                    TraceMarks.mark("caller: exit")
                    output.finish()
                    return Int32(status.code)
                case .ping(let nonce):
                    try send(.pong(nonce))
                default:
                    throw SluiceError(.wrongDirection, "unexpected \(message.kind.rawValue) on the data channel")
                }
            }
            if let frame = pendingFrame {
                if try sendFrame(frame) { pendingFrame = nil }
            }
            try checkCancel()
            // While a cancel descriptor is armed, wake up every 50 ms to look at it.
            let wait: Int32 = cancel != nil && !cancelled ? 50 : -1
            var inputReady = false
            if inputOpen, pendingFrame == nil, let input {
                let ready = try Readiness.wait(input.readiness, readiness, timeoutMilliseconds: wait)
                inputReady = ready.first
                if ready.second { link.vchan.consumeEvents() }
            } else {
                if try Readiness.wait(readiness, timeoutMilliseconds: wait).first { link.vchan.consumeEvents() }
            }
            if inputReady, let input {
                let count = buffer.withUnsafeMutableBytes { input.read(into: $0) }
                if let count, count > 0 {
                    let frame = try link.encoder.encode(
                        .data(DataChunk(stream: .stdin, bytes: Array(buffer[..<count]))))
                    if try !sendFrame(frame) { pendingFrame = frame }
                } else if count == 0 {
                    inputOpen = false
                    try send(.eof(.stdin))
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

/// Where a call's stdin comes from.
public protocol CallInput: AnyObject, Sendable {
    /// Readable when `read` has bytes or the end of input to report.
    var readiness: FileDescriptor { get }
    /// Up to `buffer.count` bytes; 0 at the end of input; nil when nothing is there yet.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int?
}

/// Where a call's stdout and stderr go. `write` may block: that is the call's backpressure.
public protocol CallOutput: Sendable {
    func write(_ stream: StreamID, _ bytes: [UInt8]) throws(SluiceError)
    /// The exit status arrived: no more output.
    func finish()
}

/// stdin from a descriptor (`sluice-call`'s own).
public final class DescriptorInput: CallInput {
    public let readiness: FileDescriptor

    public init(_ descriptor: FileDescriptor) { readiness = descriptor }

    public func read(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        let count = Glibc.read(readiness.rawValue, buffer.baseAddress, buffer.count)
        if count >= 0 { return count }
        return errno == EINTR || errno == EAGAIN ? nil : 0
    }
}

/// stdout and stderr to two descriptors.
public struct DescriptorOutput: CallOutput {
    public let output: FileDescriptor
    public let errorOutput: FileDescriptor

    public init(_ output: FileDescriptor, _ errorOutput: FileDescriptor) {
        self.output = output
        self.errorOutput = errorOutput
    }

    public func write(_ stream: StreamID, _ bytes: [UInt8]) throws(SluiceError) {
        try (stream == .stderr ? errorOutput : output).writeAll(bytes)
    }

    public func finish() {}
}
