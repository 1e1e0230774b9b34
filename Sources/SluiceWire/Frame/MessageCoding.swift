/// The field layout of each message type: the one place that maps `Message` to header fields and back.
/// `docs/protocol.md` documents the same table; keep the two in step.
enum MessageCoding {
    static let maxUInt16 = UInt64(UInt16.max)
    static let maxUInt32 = UInt64(UInt32.max)
    static let maxCounter = RequestID.max

    // MARK: Writing

    static func write(_ message: Message, into json: inout JSONWriter, limits: WireLimits) throws(SluiceError) {
        json.beginObject()
        json.field("type", message.kind.rawValue)
        switch message {
        case .hello(let hello):
            json.field("min_version", UInt64(hello.minVersion))
            json.field("max_version", UInt64(hello.maxVersion))
        case .call(let request):
            json.field("id", request.id.rawValue)
            json.field("service", request.call.service.rawValue)
            json.field("argument", request.call.argument.rawValue)
            json.field("target", request.target.rawValue)
            if let source = request.requestedSource { json.field("requested_source", source.rawValue) }
        case .refused(let refusal):
            try checkText(refusal.message, limits)
            json.field("id", refusal.id.rawValue)
            json.field("code", UInt64(refusal.code.rawValue))
            json.field("message", refusal.message)
        case .connect(let order):
            json.field("id", order.id.rawValue)
            json.field("call", order.call.rawValue)
            write(order.rendezvous, into: &json)
        case .exec(let order):
            json.field("call", order.call.rawValue)
            json.field("service", order.serviceCall.service.rawValue)
            json.field("argument", order.serviceCall.argument.rawValue)
            json.field("source", order.source.rawValue)
            json.field("requested_target", order.requestedTarget.rawValue)
            if let user = order.user { json.field("user", user.rawValue) }
            write(order.rendezvous, into: &json)
            if let timeout = order.timeoutMilliseconds { json.field("timeout_ms", UInt64(timeout)) }
        case .data(let chunk):
            json.field("stream", chunk.stream.rawValue)
        case .eof(let stream):
            json.field("stream", stream.rawValue)
        case .exit(let status):
            json.field("code", UInt64(status.code))
            json.field("reason", status.reason.rawValue)
        case .done(let report):
            json.field("call", report.call.rawValue)
            json.field("exit_code", UInt64(report.exitCode))
            json.field("bytes_in", report.bytesIn)
            json.field("bytes_out", report.bytesOut)
        case .cancel(let id):
            json.field("id", id.rawValue)
        case .ping(let nonce), .pong(let nonce):
            json.field("nonce", nonce)
        case .error(let report):
            try checkText(report.message, limits)
            json.field("code", UInt64(report.code.rawValue))
            json.field("message", report.message)
        }
        json.endObject()
    }

    private static func write(_ rendezvous: Rendezvous, into json: inout JSONWriter) {
        json.objectField("rendezvous") { inner in
            inner.field("domain", UInt64(rendezvous.domain.rawValue))
            inner.field("port", UInt64(rendezvous.port.rawValue))
            if let role = rendezvous.role { inner.field("role", role.rawValue) }
        }
    }

    private static func checkText(_ text: String, _ limits: WireLimits) throws(SluiceError) {
        guard text.utf8.count <= limits.maxTextBytes else {
            throw SluiceError(
                .textTooLong, "a text field is \(text.utf8.count) bytes long; the limit is \(limits.maxTextBytes)")
        }
        guard !text.utf8.contains(0) else { throw SluiceError(.nulCharacter, "a text field holds a NUL character") }
    }

    // MARK: Reading

    static func read(
        _ json: inout HeaderReader,
        payload: UnsafeRawBufferPointer,
        direction: Direction,
        limits: WireLimits
    ) throws(SluiceError) -> Message {
        let typeName = try json.string("type")
        guard let kind = MessageKind(rawValue: typeName) else {
            throw SluiceError(.unknownMessageType, "unknown message type \(NameCharset.quoted(typeName))")
        }
        guard kind.directions.contains(direction) else {
            throw SluiceError(.wrongDirection, "\"\(kind.rawValue)\" messages may not travel \(direction)")
        }
        if !kind.carriesPayload && !payload.isEmpty {
            throw SluiceError(.unexpectedPayload, "a \(kind.rawValue) message carries no payload")
        }
        let message: Message
        switch kind {
        case .hello:
            let minVersion = UInt16(try json.integer("min_version", max: maxUInt16))
            let maxVersion = UInt16(try json.integer("max_version", max: maxUInt16))
            guard minVersion <= maxVersion else {
                throw SluiceError(.valueOutOfRange, "min_version \(minVersion) is above max_version \(maxVersion)")
            }
            message = .hello(Hello(minVersion: minVersion, maxVersion: maxVersion))
        case .call:
            let id = try requestID(&json, "id")
            let service = try ServiceName(try json.string("service"))
            let argument = try ServiceArgument(try json.string("argument"))
            let target = try TargetName(try json.string("target"))
            let source = try json.optionalString("requested_source").map { (text) throws(SluiceError) in
                try DomainName(text)
            }
            message = .call(
                CallRequest(
                    id: id,
                    call: try ServiceCall(service: service, argument: argument),
                    target: target,
                    requestedSource: source
                )
            )
        case .refused:
            let id = try requestID(&json, "id")
            let code = try errorCode(&json)
            message = .refused(Refusal(id: id, code: code, message: try text(&json, "message", limits)))
        case .connect:
            message = .connect(
                ConnectOrder(
                    id: try requestID(&json, "id"), call: try requestID(&json, "call"),
                    rendezvous: try rendezvous(&json))
            )
        case .exec:
            let call = try requestID(&json, "call")
            let service = try ServiceName(try json.string("service"))
            let argument = try ServiceArgument(try json.string("argument"))
            let source = try DomainName(try json.string("source"))
            let requestedTarget = try TargetName(try json.string("requested_target"))
            let user = try json.optionalString("user").map { (text) throws(SluiceError) in try UserName(text) }
            let meeting = try rendezvous(&json)
            let timeout = try json.optionalInteger("timeout_ms", max: maxUInt32).map { UInt32($0) }
            message = .exec(
                ExecOrder(
                    call: call,
                    serviceCall: try ServiceCall(service: service, argument: argument),
                    source: source,
                    requestedTarget: requestedTarget,
                    user: user,
                    rendezvous: meeting,
                    timeoutMilliseconds: timeout
                )
            )
        case .data:
            let stream = try streamID(&json, direction: direction)
            guard !payload.isEmpty else {
                throw SluiceError(.missingPayload, "a data message must carry at least one byte")
            }
            message = .data(DataChunk(stream: stream, bytes: Array(payload)))
        case .eof:
            message = .eof(try streamID(&json, direction: direction))
        case .exit:
            let code = UInt8(try json.integer("code", max: 255))
            let reasonName = try json.string("reason")
            guard let reason = ExitReason(rawValue: reasonName) else {
                throw SluiceError(.valueOutOfRange, "unknown exit reason \(NameCharset.quoted(reasonName))")
            }
            message = .exit(ExitStatus(code: code, reason: reason))
        case .done:
            message = .done(
                CallReport(
                    call: try requestID(&json, "call"),
                    exitCode: UInt8(try json.integer("exit_code", max: 255)),
                    bytesIn: try json.integer("bytes_in", max: maxCounter),
                    bytesOut: try json.integer("bytes_out", max: maxCounter)
                )
            )
        case .cancel:
            message = .cancel(try requestID(&json, "id"))
        case .ping:
            message = .ping(try json.integer("nonce", max: maxCounter))
        case .pong:
            message = .pong(try json.integer("nonce", max: maxCounter))
        case .error:
            let code = try errorCode(&json)
            message = .error(ErrorReport(code: code, message: try text(&json, "message", limits)))
        }
        try json.finish()
        return message
    }

    private static func requestID(_ json: inout HeaderReader, _ key: StaticString) throws(SluiceError) -> RequestID {
        // RequestID's range is the one the reader enforces, so the initializer cannot fail here.
        RequestID(rawValue: try json.integer(key, max: RequestID.max)) ?? RequestID(rawValue: 0)!
    }

    private static func errorCode(_ json: inout HeaderReader) throws(SluiceError) -> SluiceError.Code {
        SluiceError.Code(rawValue: UInt16(try json.integer("code", max: maxUInt16)))
    }

    private static func text(_ json: inout HeaderReader, _ key: StaticString, _ limits: WireLimits) throws(SluiceError)
        -> String
    {
        let value = try json.string(key)
        guard value.utf8.count <= limits.maxTextBytes else {
            throw SluiceError(
                .textTooLong, "field \"\(key)\" is \(value.utf8.count) bytes long; the limit is \(limits.maxTextBytes)")
        }
        return value
    }

    private static func streamID(_ json: inout HeaderReader, direction: Direction) throws(SluiceError) -> StreamID {
        let name = try json.string("stream")
        guard let stream = StreamID(rawValue: name) else {
            throw SluiceError(.valueOutOfRange, "unknown stream \(NameCharset.quoted(name))")
        }
        guard stream.direction == direction else {
            throw SluiceError(.wrongDirection, "\(stream.rawValue) may not travel \(direction)")
        }
        return stream
    }

    private static func rendezvous(_ json: inout HeaderReader) throws(SluiceError) -> Rendezvous {
        try json.object("rendezvous") { (inner: inout HeaderReader) throws(SluiceError) -> Rendezvous in
            let domain = try inner.integer("domain", max: UInt64(DomainID.maxOrdinary))
            let port = try inner.integer("port", max: maxUInt16)
            guard let domainID = DomainID(rawValue: UInt16(domain)), let vchanPort = VchanPort(rawValue: UInt16(port))
            else {
                throw SluiceError(.valueOutOfRange, "rendezvous port 0 is not a vchan port")
            }
            var role: DataChannelRole?
            if let text = try inner.optionalString("role") {
                guard let value = DataChannelRole(rawValue: text) else {
                    throw SluiceError(.valueOutOfRange, "rendezvous role must be server or client")
                }
                role = value
            }
            return Rendezvous(domain: domainID, port: vchanPort, role: role)
        }
    }
}
