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
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let doc = try String(contentsOf: root.appendingPathComponent("docs/protocol.md"), encoding: .utf8)
        for code in SluiceError.Code.all {
            #expect(doc.contains("| \(code.rawValue) | `\(code.name)` |"), "code \(code.rawValue) \(code.name)")
        }
    }

    @Test("the description carries name, number and message")
    func description() {
        let error = SluiceError(.duplicateKey, "the header repeats a key")
        #expect(error.description == "duplicate-key (111): the header repeats a key")
    }
}
