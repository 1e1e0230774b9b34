import SluiceWire
import Testing

struct HostileFrame: CustomTestStringConvertible, Sendable {
    var label: String
    var bytes: [UInt8]
    var direction: Direction
    var expected: SluiceError.Code

    var testDescription: String { label }

    init(_ label: String, _ bytes: [UInt8], _ expected: SluiceError.Code) {
        self.init(label, bytes, .agentToDaemon, expected)
    }

    init(_ label: String, _ bytes: [UInt8], _ direction: Direction, _ expected: SluiceError.Code) {
        self.label = label
        self.bytes = bytes
        self.direction = direction
        self.expected = expected
    }

    static let call = #""type":"call","id":1,"service":"qubes.Filecopy","argument":"","target":"work""#

    static let all: [HostileFrame] = [
        // Lengths, checked before allocation.
        .init("a 4 GiB header length", Samples.prefix(.max, 0), .headerTooLarge),
        .init("a header one byte over the limit", Samples.prefix(66_049, 0), .headerTooLarge),
        .init("a 4 GiB payload length", Samples.prefix(10, .max), .payloadTooLarge),
        .init("a payload one byte over the limit", Samples.prefix(10, 65_537), .payloadTooLarge),
        .init("a frame over the limit from legal parts", Samples.prefix(66_048, 65_536), .frameTooLarge),
        .init("a zero header length", Samples.prefix(0, 0), .headerMissing),
        // JSON.
        .init("a duplicate service key", Samples.frame("{\(call),\"service\":\"evil\"}"), .duplicateKey),
        .init(
            "a duplicate key in a nested object",
            Samples.frame(#"{"type":"connect","id":1,"call":2,"rendezvous":{"domain":1,"port":2,"port":3}}"#),
            .daemonToAgent, .duplicateKey),
        .init("invalid JSON", Samples.frame("{\"type\":\"call\","), .invalidJSON),
        .init("a trailing comma", Samples.frame("{\(call),}"), .invalidJSON),
        .init("a second JSON value", Samples.frame("{\(call)} {}"), .invalidJSON),
        .init("a header that is an array", Samples.frame("[1,2]"), .headerNotObject),
        .init("a header that is a number", Samples.frame("42"), .invalidJSON),
        .init(
            "a header nested too deep",
            Samples.frame(String(repeating: "[", count: 5) + String(repeating: "]", count: 5)),
            .headerTooDeep),
        .init(
            "10 000 levels of nesting",
            Samples.frame(String(repeating: "{\"a\":", count: 10_000) + "1" + String(repeating: "}", count: 10_000)),
            .headerTooDeep),
        .init(
            "invalid UTF-8 in a string",
            Samples.frame(
                bytes: Array("{\"type\":\"call\",\"id\":1,\"service\":\"a".utf8) + [0xC0, 0xAF] + Array("\"}".utf8)),
            .invalidUTF8),
        .init("a lone surrogate escape", Samples.frame(#"{"type":"ping","nonce":1,"x":"\ud800"}"#), .invalidUTF8),
        .init(
            "an escaped NUL", Samples.frame(#"{"type":"call","id":1,"service":"a\u0000b","argument":"","target":"w"}"#),
            .nulCharacter),
        .init(
            "a raw NUL byte", Samples.frame(bytes: Array("{\"type\":\"ping\",\"nonce\":1}".utf8) + [0]), .nulCharacter),
        .init(
            "an integer too big for JSON", Samples.frame(#"{"type":"ping","nonce":100000000000000000000}"#),
            .invalidJSON),
        // Fields.
        .init("no type", Samples.frame(#"{"id":1}"#), .missingField),
        .init("an unknown type", Samples.frame(#"{"type":"shell","cmd":"rm -rf /"}"#), .unknownMessageType),
        .init("a type that is not a string", Samples.frame(#"{"type":1}"#), .wrongFieldType),
        .init(
            "an id that is a string",
            Samples.frame(#"{"type":"call","id":"1","service":"a","argument":"","target":"w"}"#),
            .wrongFieldType),
        .init(
            "an id that is a real number",
            Samples.frame(#"{"type":"call","id":1.5,"service":"a","argument":"","target":"w"}"#),
            .wrongFieldType),
        .init(
            "an id that is negative",
            Samples.frame(#"{"type":"call","id":-1,"service":"a","argument":"","target":"w"}"#),
            .valueOutOfRange),
        .init(
            "an id above 2^53",
            Samples.frame(#"{"type":"call","id":9007199254740992,"service":"a","argument":"","target":"w"}"#),
            .valueOutOfRange),
        .init(
            "a call without a target", Samples.frame(#"{"type":"call","id":1,"service":"a","argument":""}"#),
            .missingField),
        .init("a call with a claimed source", Samples.frame("{\(call),\"source\":\"dom0\"}"), .unknownField),
        .init(
            "an unknown field in a nested object",
            Samples.frame(#"{"type":"connect","id":1,"call":2,"rendezvous":{"domain":1,"port":2,"x":3}}"#),
            .daemonToAgent,
            .unknownField),
        .init(
            "a data channel role that is neither server nor client",
            Samples.frame(#"{"type":"connect","id":1,"call":2,"rendezvous":{"domain":1,"port":2,"role":"both"}}"#),
            .daemonToAgent,
            .valueOutOfRange),
        .init(
            "a data channel role that is not a string",
            Samples.frame(#"{"type":"connect","id":1,"call":2,"rendezvous":{"domain":1,"port":2,"role":1}}"#),
            .daemonToAgent,
            .wrongFieldType),
        .init(
            "a port out of range",
            Samples.frame(#"{"type":"connect","id":1,"call":2,"rendezvous":{"domain":1,"port":65536}}"#),
            .daemonToAgent,
            .valueOutOfRange),
        .init(
            "a reserved domain id",
            Samples.frame(#"{"type":"connect","id":1,"call":2,"rendezvous":{"domain":32752,"port":600}}"#),
            .daemonToAgent,
            .valueOutOfRange),
        .init(
            "an exit code over 255", Samples.frame(#"{"type":"exit","code":256,"reason":"exited"}"#), .serviceToCaller,
            .valueOutOfRange),
        .init(
            "an unknown exit reason", Samples.frame(#"{"type":"exit","code":0,"reason":"bored"}"#), .serviceToCaller,
            .valueOutOfRange),
        .init(
            "min_version above max_version", Samples.frame(#"{"type":"hello","min_version":3,"max_version":2}"#),
            .valueOutOfRange),
        .init(
            "a message over the text limit",
            Samples.frame("{\"type\":\"error\",\"code\":1,\"message\":\"\(String(repeating: "x", count: 1_025))\"}"),
            .textTooLong),
        // Directions (QSB-087).
        .init(
            "stderr data from the caller", Samples.frame(#"{"type":"data","stream":"stderr"}"#, payload: [0x1B]),
            .callerToService, .wrongDirection),
        .init(
            "stdout end-of-file from the caller", Samples.frame(#"{"type":"eof","stream":"stdout"}"#), .callerToService,
            .wrongDirection),
        .init(
            "stdin data from the service", Samples.frame(#"{"type":"data","stream":"stdin"}"#, payload: [1]),
            .serviceToCaller, .wrongDirection),
        .init(
            "an exit status from the caller", Samples.frame(#"{"type":"exit","code":0,"reason":"exited"}"#),
            .callerToService, .wrongDirection),
        .init("an exec order from an agent", Samples.frame(#"{"type":"exec"}"#), .agentToDaemon, .wrongDirection),
        .init("a call from the daemon", Samples.frame("{\(call)}"), .daemonToAgent, .wrongDirection),
        .init(
            "a refusal from a client", Samples.frame(#"{"type":"refused","id":1,"code":1,"message":""}"#),
            .clientToAgent,
            .wrongDirection),
        .init("a done report on a data channel", Samples.frame(#"{"type":"done"}"#), .serviceToCaller, .wrongDirection),
        // Payloads.
        .init("a payload on a call", Samples.frame("{\(call)}", payload: [1, 2, 3]), .unexpectedPayload),
        .init(
            "data without payload", Samples.frame(#"{"type":"data","stream":"stdin"}"#), .callerToService,
            .missingPayload),
        // Names.
        .init(
            "a service with a slash",
            Samples.frame(#"{"type":"call","id":1,"service":"../bin/sh","argument":"","target":"w"}"#),
            .invalidServiceName),
        .init(
            "a service with a dollar (QSB-038)",
            Samples.frame(#"{"type":"call","id":1,"service":"a$b","argument":"","target":"w"}"#), .invalidServiceName),
        .init(
            "an argument with a space",
            Samples.frame(#"{"type":"call","id":1,"service":"a","argument":"x y","target":"w"}"#),
            .invalidArgument),
        .init(
            "a target with a slash",
            Samples.frame(#"{"type":"call","id":1,"service":"a","argument":"","target":"a/b"}"#),
            .invalidTarget),
        .init(
            "an empty target", Samples.frame(#"{"type":"call","id":1,"service":"a","argument":"","target":""}"#),
            .invalidTarget),
        .init(
            "a requested source that is not a domain name",
            Samples.frame("{\(call),\"requested_source\":\"@anyvm\"}"), .invalidDomainName),
        .init(
            "an exec source that is a keyword",
            Samples.frame(
                #"{"type":"exec","call":1,"service":"a","argument":"","source":"@adminvm","requested_target":"x","rendezvous":{"domain":0,"port":513}}"#
            ),
            .daemonToAgent, .invalidDomainName),
        .init(
            "a user starting with a dash",
            Samples.frame(
                #"{"type":"exec","call":1,"service":"a","argument":"","source":"work","requested_target":"x","user":"-root","rendezvous":{"domain":0,"port":513}}"#
            ),
            .daemonToAgent, .invalidArgument),
    ]
}

@Suite("Hostile frames are rejected with a stable code")
struct FrameRejectionTests {
    @Test("each hostile datagram", arguments: HostileFrame.all)
    func rejectsDatagram(_ hostile: HostileFrame) {
        do {
            _ = try FrameDecoder(direction: hostile.direction).decode(datagram: hostile.bytes)
            Issue.record("accepted \(hostile.label)")
        } catch {
            #expect(error.code == hostile.expected, "\(error)")
        }
    }

    @Test("a stream reader refuses a bad prefix at once, without waiting for the announced bytes")
    func rejectsPrefixInStream() {
        let prefixOnly = HostileFrame.all.filter { $0.bytes.count == 8 }
        #expect(prefixOnly.count == 6)
        for bad in prefixOnly {
            do {
                _ = try FrameDecoder(direction: bad.direction).decode(from: bad.bytes)
                Issue.record("\(bad.label) was not refused")
            } catch {
                #expect(error.code == bad.expected, "\(bad.label)")
            }
        }
    }

    @Test("a truncated frame consumes nothing in a stream and is an error as a datagram")
    func truncated() throws {
        let frame = try FrameEncoder(direction: .clientToAgent).encode(
            .call(
                CallRequest(id: Samples.id(1), call: try ServiceCall(parsing: "qubes.Filecopy+arg"), target: .default))
        )
        let decoder = FrameDecoder(direction: .clientToAgent)
        for length in 0..<frame.count {
            let partial = Array(frame[..<length])
            let outcome = try decoder.decode(from: partial)
            #expect(outcome == .needMoreBytes(length < 8 ? 8 : frame.count), "length \(length)")
            do {
                _ = try decoder.decode(datagram: partial)
                Issue.record("accepted a truncated datagram of \(length) bytes")
            } catch {
                #expect(error.code == .truncatedFrame)
            }
        }
    }

    @Test("a datagram with bytes after its frame is rejected")
    func trailingBytes() throws {
        let frame = try FrameEncoder(direction: .agentToDaemon).encode(.ping(1)) + [0]
        do {
            _ = try FrameDecoder(direction: .agentToDaemon).decode(datagram: frame)
            Issue.record("accepted trailing bytes")
        } catch {
            #expect(error.code == .trailingBytes)
        }
    }

    @Test("a decoder with lower limits enforces them")
    func customLimits() throws {
        let limits = WireLimits(maxPayloadBytes: 16)
        let frame = try FrameEncoder(direction: .callerToService).encode(
            .data(DataChunk(stream: .stdin, bytes: Array(repeating: 1, count: 17))))
        do {
            _ = try FrameDecoder(direction: .callerToService, limits: limits).decode(datagram: frame)
            Issue.record("accepted a payload over the limit")
        } catch {
            #expect(error.code == .payloadTooLarge)
        }
    }
}

@Suite("The encoder refuses what the decoder would refuse")
struct FrameEncoderTests {
    @Test("a wrong direction, an oversized or empty payload, and long text leave the buffer unchanged")
    func encoderRefusals() throws {
        let cases: [(Message, Direction, SluiceError.Code)] = [
            (.data(DataChunk(stream: .stderr, bytes: [1])), .callerToService, .wrongDirection),
            (.exec(try Samples.all[8].0.execOrder), .agentToDaemon, .wrongDirection),
            (
                .data(DataChunk(stream: .stdout, bytes: Array(repeating: 0, count: 65_537))), .serviceToCaller,
                .payloadTooLarge
            ),
            (.data(DataChunk(stream: .stdout, bytes: [])), .serviceToCaller, .missingPayload),
            (
                .error(ErrorReport(code: .invalidJSON, message: String(repeating: "x", count: 1_025))), .daemonToAgent,
                .textTooLong
            ),
            (.error(ErrorReport(code: .invalidJSON, message: "a\u{0}b")), .daemonToAgent, .nulCharacter),
        ]
        for (message, direction, expected) in cases {
            var buffer: [UInt8] = [9, 9, 9]
            do {
                try FrameEncoder(direction: direction).encode(message, appendingTo: &buffer)
                Issue.record("encoded \(message.kind) \(direction)")
            } catch {
                #expect(error.code == expected)
            }
            #expect(buffer == [9, 9, 9])
        }
    }
}

extension Message {
    var execOrder: ExecOrder {
        get throws {
            guard case .exec(let order) = self else { throw SluiceError(.unknownMessageType, "not an exec") }
            return order
        }
    }
}
