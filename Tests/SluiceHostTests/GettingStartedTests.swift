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
        // Each documented call appears with the same lines after it. Within one call, the handler's stdout and stderr
        // are two streams, so their lines may interleave either way: compare them as sets.
        func blocks(_ lines: [String]) -> [String: Set<String>] {
            var result: [String: Set<String>] = [:]
            var current: String?
            for line in lines where !line.isEmpty {
                if line.hasPrefix("$ ") {
                    current = line
                    result[line] = []
                } else if line.hasPrefix("==") {
                    current = nil
                } else if let current {
                    result[current, default: []].insert(line)
                }
            }
            return result
        }
        let actual = blocks(text.split(separator: "\n").map(String.init))
        let documented = blocks(expected)
        #expect(!documented.isEmpty)
        for (command, lines) in documented {
            #expect(actual[command] == lines, "\(command)\n\(text)")
        }
    }
}
