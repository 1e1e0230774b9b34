/// One protocol message: the typed content of a frame's JSON header, plus the payload for `data`.
///
/// `docs/protocol.md` gives each message's fields and directions; `FrameEncoder` and `FrameDecoder` map them
/// to bytes. Field values are already validated: a `Message` can always be encoded.
public enum Message: Sendable, Hashable {
    /// Version negotiation; the first message each side sends on every channel.
    case hello(Hello)
    /// A call request: the service, argument and requested target. The source is never in it.
    case call(CallRequest)
    /// A refusal of a call or request, with a reason code.
    case refused(Refusal)
    /// To the caller's side: the call was allowed, set up the data channel here.
    case connect(ConnectOrder)
    /// To the target's agent: run this service for this source, and meet the caller at this rendezvous.
    case exec(ExecOrder)
    /// Bytes of one stream.
    case data(DataChunk)
    /// The end of one stream.
    case eof(StreamID)
    /// The call's exit status, from the service side.
    case exit(ExitStatus)
    /// An agent's report that a call has ended, for the audit log and to free its port.
    case done(CallReport)
    /// Cancel a call or request.
    case cancel(RequestID)
    /// Keepalive probe and answer.
    case ping(UInt64)
    case pong(UInt64)
    /// A protocol error report, sent before the sender closes the channel.
    case error(ErrorReport)

    public var kind: MessageKind {
        switch self {
        case .hello: .hello
        case .call: .call
        case .refused: .refused
        case .connect: .connect
        case .exec: .exec
        case .data: .data
        case .eof: .eof
        case .exit: .exit
        case .done: .done
        case .cancel: .cancel
        case .ping: .ping
        case .pong: .pong
        case .error: .error
        }
    }

    /// Whether this message may travel in `direction` (the stream decides for `data` and `eof`).
    public func mayTravel(_ direction: Direction) -> Bool {
        switch self {
        case .data(let chunk): chunk.stream.direction == direction
        case .eof(let stream): stream.direction == direction
        default: kind.directions.contains(direction)
        }
    }
}

/// `hello`: the range of protocol versions the sender speaks.
public struct Hello: Sendable, Hashable {
    public var minVersion: UInt16
    public var maxVersion: UInt16

    /// The versions this build speaks.
    public static let current = Hello(minVersion: 1, maxVersion: 1)

    public init(minVersion: UInt16, maxVersion: UInt16) {
        self.minVersion = minVersion
        self.maxVersion = maxVersion
    }

    /// The version both sides use: the highest one in both ranges. Code `unsupported-version` (124) if none.
    public func negotiate(with peer: Hello) throws(SluiceError) -> UInt16 {
        let version = min(maxVersion, peer.maxVersion)
        guard version >= max(minVersion, peer.minVersion) else {
            throw SluiceError(
                .unsupportedVersion,
                "this side speaks versions \(minVersion)...\(maxVersion), the peer \(peer.minVersion)...\(peer.maxVersion)"
            )
        }
        return version
    }
}

/// `call`: what a caller asks for. The source is the channel's, never a field.
public struct CallRequest: Sendable, Hashable {
    /// The request's id, chosen by the sender, unique on its channel while the request is open.
    public var id: RequestID
    public var call: ServiceCall
    public var target: TargetName
    /// Only from a relay domain calling on behalf of one of its RemoteVMs (qrexec's `--source-qube`).
    public var requestedSource: DomainName?

    public init(id: RequestID, call: ServiceCall, target: TargetName, requestedSource: DomainName? = nil) {
        self.id = id
        self.call = call
        self.target = target
        self.requestedSource = requestedSource
    }
}

/// `refused`: a request that will not run. `code` is a `SluiceError.Code`; the message names no policy details.
public struct Refusal: Sendable, Hashable {
    public var id: RequestID
    public var code: SluiceError.Code
    public var message: String

    public init(id: RequestID, code: SluiceError.Code, message: String) {
        self.id = id
        self.code = code
        self.message = message
    }
}

/// `connect`: the request `id` was allowed as call `call`; the caller's side serves the data channel at
/// `rendezvous` (whose domain is the target's).
public struct ConnectOrder: Sendable, Hashable {
    public var id: RequestID
    public var call: RequestID
    public var rendezvous: Rendezvous

    public init(id: RequestID, call: RequestID, rendezvous: Rendezvous) {
        self.id = id
        self.call = call
        self.rendezvous = rendezvous
    }
}

/// `exec`: the daemon's order to a target's agent.
public struct ExecOrder: Sendable, Hashable {
    /// The daemon-wide call id, echoed in `done`.
    public var call: RequestID
    public var serviceCall: ServiceCall
    /// The calling domain, as the daemon knows it from the caller's channel (after relay resolution).
    public var source: DomainName
    /// The target the caller asked for, before policy resolved it (`QREXEC_REQUESTED_TARGET`).
    public var requestedTarget: TargetName
    /// The user from policy `user=`; nil means the agent's default.
    public var user: UserName?
    /// Where the caller's side serves the data channel (its domain is the caller's).
    public var rendezvous: Rendezvous
    /// The call's deadline in milliseconds from receipt; nil means the service's own configuration decides.
    public var timeoutMilliseconds: UInt32?

    public init(
        call: RequestID,
        serviceCall: ServiceCall,
        source: DomainName,
        requestedTarget: TargetName,
        user: UserName? = nil,
        rendezvous: Rendezvous,
        timeoutMilliseconds: UInt32? = nil
    ) {
        self.call = call
        self.serviceCall = serviceCall
        self.source = source
        self.requestedTarget = requestedTarget
        self.user = user
        self.rendezvous = rendezvous
        self.timeoutMilliseconds = timeoutMilliseconds
    }
}

/// `data`: 1 to `WireLimits.maxPayloadBytes` bytes of one stream, carried as the frame's raw payload.
public struct DataChunk: Sendable, Hashable {
    public var stream: StreamID
    public var bytes: [UInt8]

    public init(stream: StreamID, bytes: [UInt8]) {
        self.stream = stream
        self.bytes = bytes
    }
}

/// `exit`: how the call ended. `code` is what the caller exits with.
public struct ExitStatus: Sendable, Hashable {
    public var code: UInt8
    public var reason: ExitReason

    public init(code: UInt8, reason: ExitReason) {
        self.code = code
        self.reason = reason
    }
}

/// `done`: an agent's account of an ended call.
public struct CallReport: Sendable, Hashable {
    public var call: RequestID
    public var exitCode: UInt8
    /// Bytes of stdin the service side received.
    public var bytesIn: UInt64
    /// Bytes of stdout and stderr the service side sent.
    public var bytesOut: UInt64

    public init(call: RequestID, exitCode: UInt8, bytesIn: UInt64, bytesOut: UInt64) {
        self.call = call
        self.exitCode = exitCode
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
    }
}

/// `error`: why the sender is about to close the channel.
public struct ErrorReport: Sendable, Hashable {
    public var code: SluiceError.Code
    public var message: String

    public init(code: SluiceError.Code, message: String) {
        self.code = code
        self.message = message
    }

    public init(_ error: SluiceError) {
        self.init(code: error.code, message: error.message)
    }
}
