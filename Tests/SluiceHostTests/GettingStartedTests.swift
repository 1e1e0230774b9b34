import Foundation
import SluiceSystem
import SluiceTesting
import Testing

@Suite("docs/getting-started.md stays true")
struct GettingStartedTests {
    @Test("the transcript in getting-started.md is what scripts/demo.sh prints")
    func transcript() throws {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let document = try String(contentsOfFile: repository + "/docs/getting-started.md", encoding: .utf8)
        let start = try #require(document.range(of: "```console\n"))
        let end = try #require(document.range(of: "\n```", range: start.upperBound..<document.endIndex))
        let expected = document[start.upperBound..<end.lowerBound].split(separator: "\n").map(String.init)
        let output = try SluiceSystem.Pipe()
        let demo = try ChildProcess.spawn(
            path: "/bin/bash", arguments: ["bash", repository + "/scripts/demo.sh"],
            environment: ["PATH=/usr/bin:/bin", "HOME=/tmp"], descriptors: [(output.writeEnd, 1), (output.writeEnd, 2)])
        output.writeEnd.close()
        let text = String(decoding: try output.readEnd.readToEnd(), as: UTF8.self)
        output.readEnd.close()
        #expect(try demo.wait() == .exited(0), "\(text)")
        // Every line of the documented transcript appears in the demo's output, in the same order.
        var remaining = text.split(separator: "\n").map(String.init)[...]
        for line in expected where !line.isEmpty {
            guard let index = remaining.firstIndex(of: line) else {
                Issue.record("not in the demo's output (in order): \(line)\n\(text)")
                return
            }
            remaining = remaining[(index + 1)...]
        }
    }
}
