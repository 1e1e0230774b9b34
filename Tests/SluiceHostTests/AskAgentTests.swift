import SluiceDaemon
import SluiceSystem
import Testing

@Suite("The terminal ask agent")
struct AskAgentTests {
    /// Answers one question through pipes standing in for the terminal; returns the choice and what was shown.
    func ask(answering answer: String) throws -> (String?, String) {
        let input = try SluiceSystem.Pipe()
        let output = try SluiceSystem.Pipe()
        defer {
            input.readEnd.close()
            output.readEnd.close()
        }
        try input.writeEnd.writeAll(Array(answer.utf8))
        input.writeEnd.close()
        let agent = TerminalAskAgent(input: input.readEnd, output: output.writeEnd)
        let chosen = agent.ask(
            source: "work", service: "test.Ask", argument: "key", targets: ["vault", "personal"],
            defaultTarget: "personal")
        output.writeEnd.close()
        return (chosen, String(decoding: try output.readEnd.readToEnd(), as: UTF8.self))
    }

    @Test("a number, a name or Enter for the default allows; anything else, n or end of input denies")
    func answers() throws {
        let (first, shown) = try ask(answering: "1\n")
        #expect(first == "vault")
        #expect(shown.contains("work asks to call test.Ask+key"))
        #expect(shown.contains("2) personal (default)"))
        #expect(try ask(answering: " personal \n").0 == "personal")
        #expect(try ask(answering: "\n").0 == "personal")
        #expect(try ask(answering: "n\n").0 == nil)
        #expect(try ask(answering: "untrusted\n").0 == nil)
        #expect(try ask(answering: "3\n").0 == nil)
        #expect(try ask(answering: "").0 == nil)
    }
}
