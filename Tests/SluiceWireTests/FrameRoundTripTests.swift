import SluiceWire
import Testing

@Suite("Frames round-trip")
struct FrameRoundTripTests {
    @Test("every message kind has a sample")
    func samplesCoverEveryKind() throws {
        let kinds = Set(try Samples.all.map(\.0.kind))
        #expect(kinds == Set(MessageKind.allCases))
    }

    @Test("every sample survives encode then decode as a datagram")
    func datagramRoundTrip() throws {
        for (message, direction) in try Samples.all {
            let frame = try FrameEncoder(direction: direction).encode(message)
            let decoded = try FrameDecoder(direction: direction).decode(datagram: frame)
            #expect(decoded == message, "\(message.kind) \(direction)")
        }
    }

    @Test("a stream of concatenated frames decodes one frame at a time")
    func streamRoundTrip() throws {
        let samples = try Samples.all.filter { $0.1 == .serviceToCaller }
        let encoder = FrameEncoder(direction: .serviceToCaller)
        var stream: [UInt8] = []
        for (message, _) in samples { try encoder.encode(message, appendingTo: &stream) }
        let decoder = FrameDecoder(direction: .serviceToCaller)
        var offset = 0
        var decoded: [Message] = []
        while offset < stream.count {
            guard case .frame(let message, let consumed) = try decoder.decode(from: Array(stream[offset...])) else {
                Issue.record("a whole frame was reported as partial")
                return
            }
            decoded.append(message)
            offset += consumed
        }
        #expect(decoded == samples.map(\.0))
    }

    @Test("the header layout is the documented one")
    func headerLayout() throws {
        let frame = try FrameEncoder(direction: .clientToAgent).encode(
            .call(
                CallRequest(
                    id: Samples.id(7), call: try ServiceCall(parsing: "qubes.Filecopy+x"),
                    target: try TargetName("work")))
        )
        let header = #"{"type":"call","id":7,"service":"qubes.Filecopy","argument":"x","target":"work"}"#
        #expect(frame == Samples.frame(header))
        #expect(Array(frame[0..<8]) == [UInt8(header.utf8.count), 0, 0, 0, 0, 0, 0, 0])
    }

    @Test("data payloads travel raw after the header, never base64")
    func rawPayload() throws {
        let bytes: [UInt8] = [0, 1, 2, 0xFF, 0x22, 0x5C]
        let frame = try FrameEncoder(direction: .callerToService).encode(.data(DataChunk(stream: .stdin, bytes: bytes)))
        #expect(Array(frame.suffix(bytes.count)) == bytes)
        #expect(frame.count == 8 + #"{"type":"data","stream":"stdin"}"#.utf8.count + bytes.count)
    }

    @Test("control characters and quotes in text fields are escaped and come back intact")
    func textEscaping() throws {
        let text = "tab\there \"quoted\" back\\slash \u{1} \u{1F} new\nline"
        let message = Message.error(ErrorReport(code: .invalidJSON, message: text))
        let frame = try FrameEncoder(direction: .daemonToAgent).encode(message)
        #expect(try FrameDecoder(direction: .daemonToAgent).decode(datagram: frame) == message)
    }

    @Test("an unknown error code from a newer peer survives with its number")
    func unknownCodeSurvives() throws {
        let frame = Samples.frame(#"{"type":"error","code":777,"message":"future"}"#)
        let message = try FrameDecoder(direction: .agentToClient).decode(datagram: frame)
        #expect(message == .error(ErrorReport(code: SluiceError.Code(rawValue: 777), message: "future")))
        #expect(SluiceError.Code(rawValue: 777).name == "unknown-777")
    }
}
