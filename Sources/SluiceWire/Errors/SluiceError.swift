/// Every failure in Sluice: a stable numeric code plus a human-readable message.
///
/// The code is what programs test and what travels in an `error` or `refused` frame (`"code": 111`). The message
/// is for people and logs; it never carries policy details a caller may not know. Codes are grouped by the stage
/// that raises them (1xx frames, 2xx names, 3xx policy, 4xx registry, 5xx calls and transport) and are never
/// renumbered; `docs/protocol.md` lists them all.
public struct SluiceError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.name) (\(code.rawValue)): \(message)" }

    /// A stable error code. New codes are added as static members; existing values never change meaning.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }

        /// The symbolic name, or `unknown-N` for a code this build does not know (a newer peer's code).
        public var name: String { Self.names[rawValue] ?? "unknown-\(rawValue)" }
        public var description: String { name }

        /// Every code this build knows, in numeric order.
        public static var all: [Code] { names.keys.sorted().map(Code.init(rawValue:)) }
    }
}

extension SluiceError.Code {
    // MARK: 1xx: frames and headers

    /// The whole frame (prefix, header and payload) is longer than `WireLimits.maxFrameBytes`.
    public static let frameTooLarge = Self(rawValue: 100)
    /// The header length in the prefix is over `WireLimits.maxHeaderBytes` (a 4 GiB prefix lands here).
    public static let headerTooLarge = Self(rawValue: 101)
    /// The payload length in the prefix is over `WireLimits.maxPayloadBytes`.
    public static let payloadTooLarge = Self(rawValue: 102)
    /// The header length in the prefix is zero: every frame carries a JSON header.
    public static let headerMissing = Self(rawValue: 103)
    /// A datagram is shorter than the lengths its prefix announces.
    public static let truncatedFrame = Self(rawValue: 104)
    /// A datagram is longer than the lengths its prefix announces.
    public static let trailingBytes = Self(rawValue: 105)
    /// The header is not valid JSON (syntax, trailing data, numbers out of range).
    public static let invalidJSON = Self(rawValue: 110)
    /// A JSON object in the header repeats a key.
    public static let duplicateKey = Self(rawValue: 111)
    /// The header is not valid UTF-8 (also lone surrogates in `\u` escapes).
    public static let invalidUTF8 = Self(rawValue: 112)
    /// The header holds a NUL byte, raw or as `\u0000`.
    public static let nulCharacter = Self(rawValue: 113)
    /// The header nests deeper than `WireLimits.maxHeaderDepth`.
    public static let headerTooDeep = Self(rawValue: 114)
    /// The header's top-level value is not a JSON object.
    public static let headerNotObject = Self(rawValue: 115)
    /// A field the message type requires is absent.
    public static let missingField = Self(rawValue: 116)
    /// A field has the wrong JSON type (a string where an integer belongs, a real number for an id, ...).
    public static let wrongFieldType = Self(rawValue: 117)
    /// A field this message type does not define.
    public static let unknownField = Self(rawValue: 118)
    /// The `type` field names no message of this protocol.
    public static let unknownMessageType = Self(rawValue: 119)
    /// A known message arrived on a channel or from a side that may not send it (QSB-087 class).
    public static let wrongDirection = Self(rawValue: 120)
    /// A payload came with a message type that carries none.
    public static let unexpectedPayload = Self(rawValue: 121)
    /// A `data` message came without payload bytes.
    public static let missingPayload = Self(rawValue: 122)
    /// A number is outside its field's range (a port over 65535, an exit code over 255, ...).
    public static let valueOutOfRange = Self(rawValue: 123)
    /// The two sides' protocol version ranges do not overlap.
    public static let unsupportedVersion = Self(rawValue: 124)
    /// A free-text field (a message or reason) is longer than `WireLimits.maxTextBytes`.
    public static let textTooLong = Self(rawValue: 125)

    // MARK: 2xx: names

    /// A service name is empty, too long, `.`/`..`, or has a byte outside `[A-Za-z0-9._-]`.
    public static let invalidServiceName = Self(rawValue: 200)
    /// A service argument is too long or has a byte outside `[A-Za-z0-9._+-]`.
    public static let invalidArgument = Self(rawValue: 201)
    /// A domain name is empty, too long, does not start with a letter, or has a byte outside `[A-Za-z0-9._-]`.
    public static let invalidDomainName = Self(rawValue: 202)
    /// A requested target is empty, too long, or has a byte outside `[A-Za-z0-9._:@-]`.
    public static let invalidTarget = Self(rawValue: 203)
    /// `SERVICE+ARGUMENT` together is longer than `WireLimits.maxServiceCallBytes`.
    public static let serviceCallTooLong = Self(rawValue: 204)

    // MARK: 3xx: policy

    /// The policy cannot be loaded (syntax, file name, include); every call is denied until it is fixed.
    public static let policyInvalid = Self(rawValue: 300)
    /// A request the policy cannot evaluate: an invalid requested target (`@anyvm`, `@dispvm:X` for a qube that
    /// is not a disposable template), an unknown source, a `requested_source` the caller may not use.
    public static let invalidRequest = Self(rawValue: 301)
    /// The policy refused the call. The message names no policy details. The caller exits 126.
    public static let refusedByPolicy = Self(rawValue: 302)

    // MARK: 4xx: registry and handlers

    /// No handler for the service in any service directory. The call ends with exit code 127.
    public static let serviceNotFound = Self(rawValue: 400)
    /// The service entry exists but cannot be used (not executable, not a socket, a broken link). Exit code 125.
    public static let serviceUnusable = Self(rawValue: 401)
    /// The service's configuration file is invalid (`file:line`). Exit code 125.
    public static let serviceConfigInvalid = Self(rawValue: 402)
    /// The service already runs `max-concurrent` calls; this one is refused, never queued.
    public static let serviceBusy = Self(rawValue: 403)
    /// The handler wrote more than `max-output-bytes`; the output was cut and the handler stopped.
    public static let outputLimitExceeded = Self(rawValue: 404)
    /// The call's deadline passed and the handler was stopped.
    public static let handlerTimedOut = Self(rawValue: 405)
    /// The user a handler should run as does not exist.
    public static let unknownUser = Self(rawValue: 406)

    // MARK: 5xx: calls, processes and transport

    /// A system call failed; the message names the call and its errno.
    public static let systemCallFailed = Self(rawValue: 500)
    /// The peer closed the channel (end of file where a frame or datagram was expected).
    public static let channelClosed = Self(rawValue: 501)

    /// A datagram is larger than the ring it must travel through: it could never be sent or received whole.
    public static let datagramTooLarge = Self(rawValue: 502)
    /// The vchan rendezvous refused the connection: the vchan is reserved for another domain, or the
    /// process's uid does not belong to the domain whose rendezvous socket it used.
    public static let vchanRefused = Self(rawValue: 503)
    /// No vchan server is listening for this domain on that port (yet).
    public static let vchanNotFound = Self(rawValue: 504)
    /// A vchan server already listens for that peer on that port.
    public static let vchanPortInUse = Self(rawValue: 505)
    /// The peer's shared page is malformed (ring orders, grant list, unsealed memory).
    public static let vchanInvalidRing = Self(rawValue: 506)
    /// A requested ring is larger than 1 MiB, libxenvchan's limit.
    public static let ringTooLarge = Self(rawValue: 507)
    /// The Xen transport cannot open here: no /dev/xen/gntalloc, /dev/xen/evtchn or xenstore.
    public static let xenUnavailable = Self(rawValue: 508)

    /// The operation was cancelled (Swift task cancellation, or a `cancel` message).
    public static let cancelled = Self(rawValue: 509)
    /// The calling domain, or the whole system, already has its maximum of calls in flight; the request is refused.
    public static let tooManyCalls = Self(rawValue: 510)
    /// The request's names (`SERVICE+ARG`, target, requested source) are longer than the daemon accepts
    /// (`Daemon.Configuration.maxRequestBytes`); the request is refused.
    public static let requestTooLarge = Self(rawValue: 511)
    /// The calling domain, or the whole system, already has its maximum of questions waiting for the user; the
    /// request is refused without asking.
    public static let tooManyAsks = Self(rawValue: 512)
    /// The toolstack could not start a domain, or create or destroy a disposable.
    public static let toolstackFailed = Self(rawValue: 513)
    /// The calling domain sends call requests faster than its rate limit; the request is refused before the policy
    /// is asked.
    public static let rateLimited = Self(rawValue: 514)
    /// A domain named a call or request it takes no part in, or one that never existed: a `done` from a domain that is
    /// not the call's target, a `cancel` of a request its session never made. The daemon cuts that domain's channel off;
    /// no call changes.
    public static let notAParty = Self(rawValue: 515)
    /// A message that does not fit the state of its call or channel: data before `hello`, a second `hello`, a request
    /// id that is still open, a second cancel. The receiver treats it as a protocol violation of the sender.
    public static let outOfOrder = Self(rawValue: 516)
    /// The calling domain, or the whole system, already has its maximum of disposables made for calls; the request is
    /// refused before the toolstack is asked.
    public static let tooManyDisposables = Self(rawValue: 517)
    /// More than a channel's outbox holds is waiting to be sent to a peer that does not read; the channel is closed.
    public static let outboxFull = Self(rawValue: 518)
    /// A process used a domain's socket (its agent's, or its vchan rendezvous) under a uid that is not that domain's;
    /// the kernel's peer credentials decide, never anything the process says.
    public static let wrongUID = Self(rawValue: 519)
    /// The local vchan broker holds its maximum of connections, registrations or descriptors for this domain (or in
    /// all); the request is refused until some are released.
    public static let brokerFull = Self(rawValue: 520)
    /// A descriptor received from a peer is not what it must be (a pipe where an eventfd belongs, an unsealed or
    /// wrongly sized memfd, a regular file, a socket where memory belongs); it is refused before anything uses it.
    public static let wrongDescriptor = Self(rawValue: 521)
    /// The agent already serves its maximum of local callers' connections; this one is refused.
    public static let tooManyClients = Self(rawValue: 522)
    /// The agent already runs its maximum of calls (each takes a thread and a handler); this one ends with 125.
    public static let tooManyHandlers = Self(rawValue: 523)

    static let names: [UInt16: String] = [
        100: "frame-too-large", 101: "header-too-large", 102: "payload-too-large", 103: "header-missing",
        104: "truncated-frame", 105: "trailing-bytes", 110: "invalid-json", 111: "duplicate-key",
        112: "invalid-utf8", 113: "nul-character", 114: "header-too-deep", 115: "header-not-object",
        116: "missing-field", 117: "wrong-field-type", 118: "unknown-field", 119: "unknown-message-type",
        120: "wrong-direction", 121: "unexpected-payload", 122: "missing-payload", 123: "value-out-of-range",
        124: "unsupported-version", 125: "text-too-long",
        400: "service-not-found", 401: "service-unusable", 402: "service-config-invalid", 403: "service-busy",
        404: "output-limit-exceeded", 405: "handler-timed-out", 406: "unknown-user",
        300: "policy-invalid", 301: "invalid-request", 302: "refused-by-policy",
        200: "invalid-service-name", 201: "invalid-argument", 202: "invalid-domain-name", 203: "invalid-target",
        204: "service-call-too-long",
        500: "system-call-failed", 501: "channel-closed", 502: "datagram-too-large", 503: "vchan-refused",
        504: "vchan-not-found", 505: "vchan-port-in-use", 506: "vchan-invalid-ring", 507: "ring-too-large",
        508: "xen-unavailable", 509: "cancelled", 510: "too-many-calls",
        511: "request-too-large", 512: "too-many-asks", 513: "toolstack-failed", 514: "rate-limited",
        515: "not-a-party", 516: "out-of-order", 517: "too-many-disposables", 518: "outbox-full",
        519: "wrong-uid", 520: "broker-full", 521: "wrong-descriptor", 522: "too-many-clients",
        523: "too-many-handlers",
    ]
}
