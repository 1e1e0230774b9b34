import Foundation
import SluiceWire
import Testing

@Suite("Error codes are stable and documented")
struct ErrorCodeTests {
    @Test("names are unique")
    func uniqueNames() {
        let names = SluiceError.Code.all.map(\.name)
        #expect(Set(names).count == names.count)
    }

    @Test("docs/protocol.md lists every code with its number and name")
    func documented() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let doc = try String(contentsOf: root.appendingPathComponent("docs/protocol.md"), encoding: .utf8)
        for code in SluiceError.Code.all {
            #expect(doc.contains("| \(code.rawValue) | `\(code.name)` |"), "code \(code.rawValue) \(code.name)")
        }
    }

    @Test("the hex examples in docs/protocol.md are what the encoder writes")
    func hexExamples() throws {
        let doc = try String(contentsOf: Self.root.appendingPathComponent("docs/protocol.md"), encoding: .utf8)
        let call = try FrameEncoder(direction: .clientToAgent).encode(
            .call(
                CallRequest(
                    id: RequestID(rawValue: 7)!,
                    call: try ServiceCall(parsing: "qubes.Filecopy+x"),
                    target: try TargetName("work")
                )
            )
        )
        let data = try FrameEncoder(direction: .serviceToCaller).encode(
            .data(DataChunk(stream: .stdout, bytes: Array("hi\n".utf8)))
        )
        #expect(Self.hexBlock(doc, marker: "<!-- hex:call -->") == call)
        #expect(Self.hexBlock(doc, marker: "<!-- hex:data -->") == data)
    }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The bytes of the hex dump in the fenced block after `marker` (offset, 16 hex bytes, text column).
    static func hexBlock(_ doc: String, marker: String) -> [UInt8]? {
        guard let start = doc.range(of: marker) else { return nil }
        let lines = doc[start.upperBound...].split(separator: "\n").dropFirst().prefix { !$0.hasPrefix("```") }
        return lines.flatMap { line in
            line.dropFirst(6).prefix(48).split(separator: " ").compactMap { UInt8($0, radix: 16) }
        }
    }

    @Test("the description carries name, number and message")
    func description() {
        let error = SluiceError(.duplicateKey, "the header repeats a key")
        #expect(error.description == "duplicate-key (111): the header repeats a key")
    }
}
