import Foundation
import SluicePolicy
import SluiceSystem
import SluiceTesting
import Testing

/// Runs the built `sluice-policy` and returns its exit status and standard output.
func runTool(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let output = try SluiceSystem.Pipe()
    let path = BuiltProducts.path(of: "sluice-policy")
    let child = try ChildProcess.spawn(
        path: path, arguments: [path] + arguments, environment: [],
        descriptors: [(output.writeEnd, 1), (output.writeEnd, 2)])
    output.writeEnd.close()
    let text = String(decoding: try output.readEnd.readToEnd(), as: UTF8.self)
    output.readEnd.close()
    return (try child.wait().shellStatus, text)
}

@Suite("sluice-policy, the command-line tool", .serialized)
struct PolicyToolTests {
    static let system = """
        {"domains": [
          {"name": "dom0", "type": "AdminVM", "power_state": "Running"},
          {"name": "work", "type": "AppVM", "tags": ["trusted"], "default_dispvm": "work-dvm", "power_state": "Running"},
          {"name": "vault", "type": "AppVM"},
          {"name": "work-dvm", "type": "AppVM", "template_for_dispvms": true}
        ]}
        """

    func fixture(_ policy: String) throws -> PolicyFixture {
        let fixture = try PolicyFixture(["30-test.policy": policy])
        try fixture.write("system.json", Self.system)
        return fixture
    }

    @Test("eval --json prints the decision and exits 0")
    func evalAllow() throws {
        let fixture = try fixture("test.Service * @tag:trusted vault allow user=root\n")
        defer { fixture.directory.remove() }
        let (status, output) = try runTool([
            "eval", "--policy-dir", fixture.policyDirectory, "--system", fixture.directory.path + "/system.json",
            "--source", "work",
            "--target", "vault", "--service", "test.Service+x", "--json",
        ])
        #expect(status == 0, "\(output)")
        #expect(
            output.trimmingCharacters(in: .whitespacesAndNewlines)
                == #"{"action":"allow","autostart":true,"notify":false,"requested_target":"vault","rule":"30-test:1","target":"vault","user":"root"}"#
        )
    }

    @Test("eval --json of an ask lists sorted choices and a dispvm default")
    func evalAsk() throws {
        let fixture = try fixture("test.Service * work @anyvm ask default_target=@dispvm\n")
        defer { fixture.directory.remove() }
        let (status, output) = try runTool([
            "eval", "--policy-dir", fixture.policyDirectory, "--system", fixture.directory.path + "/system.json",
            "--source", "work",
            "--service", "test.Service", "--json",
        ])
        #expect(status == 0)
        #expect(output.contains(#""targets_for_ask":["@dispvm:work-dvm","vault","work-dvm"]"#), "\(output)")
        #expect(output.contains(#""default_target":"@dispvm:work-dvm""#))
        #expect(output.contains(#""requested_target":"@default""#))
    }

    @Test("an unusable policy exits 2 with a parse error, an invalid request 3")
    func exitCodes() throws {
        let broken = try fixture("test.Service * work vault allow notify=maybe\n")
        defer { broken.directory.remove() }
        let parse = try runTool([
            "eval", "--policy-dir", broken.policyDirectory, "--source", "work", "--service", "a", "--json",
        ])
        #expect(parse.status == 2)
        #expect(parse.output.contains(#""error":"parse""#))
        #expect(parse.output.contains(#""line":1"#))

        let good = try fixture("test.Service * work vault allow\n")
        defer { good.directory.remove() }
        let system = good.directory.path + "/system.json"
        for arguments in [
            ["--service", "bad/service"], ["--service", "ok", "--target", "@anyvm"], ["--service-hex", "612b00"],
            ["--service", "ok", "--target", "@dispvm:vault"], ["--service", "ok+a$b"],
        ] {
            let result = try runTool(
                ["eval", "--policy-dir", good.policyDirectory, "--system", system, "--source", "work", "--json"]
                    + arguments)
            #expect(result.status == 3, "\(arguments): \(result.output)")
            #expect(result.output.contains(#""error":"request""#), "\(arguments)")
        }
    }

    @Test("lint prints file:line:col and exits non-zero on errors")
    func lint() throws {
        let fixture = try fixture("test.Service * work vault allow\ntest.Service * work @bogus allow\n")
        defer { fixture.directory.remove() }
        let (status, output) = try runTool(["lint", fixture.policyDirectory])
        #expect(status == 1)
        #expect(output.contains("30-test.policy:2:21: invalid target token @bogus"), "\(output)")
    }

    @Test("the shipped Policies/ directory lints clean")
    func shippedPolicies() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let (status, output) = try runTool(["lint", root.appendingPathComponent("Policies").path])
        #expect(status == 0, "\(output)")
        #expect(output.contains("ok: no errors"))
    }

    @Test("graph writes DOT edges for allowed (solid) and asked (dashed) calls")
    func graph() throws {
        let fixture = try fixture("test.Service * work vault allow\ntest.Other * work @anyvm ask\n")
        defer { fixture.directory.remove() }
        let (status, output) = try runTool([
            "graph", "--policy-dir", fixture.policyDirectory, "--system", fixture.directory.path + "/system.json",
        ])
        #expect(status == 0)
        #expect(output.contains(#""work" -> "vault" [label="test.Service", style=solid];"#), "\(output)")
        #expect(output.contains(#""work" -> "vault" [label="test.Other", style=dashed];"#))
        let json = try runTool([
            "graph", "--policy-dir", fixture.policyDirectory, "--system", fixture.directory.path + "/system.json",
            "--service",
            "test.Service", "--json",
        ])
        #expect(
            json.output.contains(
                #"{"edges":[{"action":"allow","call":"test.Service","source":"work","target":"vault"}]}"#),
            "\(json.output)")
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/dot") {
            let svg = fixture.directory.path + "/graph.svg"
            let rendered = try runTool(
                [
                    "graph", "--policy-dir", fixture.policyDirectory, "--system",
                    fixture.directory.path + "/system.json", "--svg", svg,
                ])
            #expect(rendered.status == 0)
            #expect((try? String(contentsOfFile: svg, encoding: .utf8))?.contains("<svg") == true)
        }
    }
}

@Suite("The inventory's JSON")
struct InventoryJSONTests {
    @Test("an inventory written as JSON reads back the same")
    func roundTrip() throws {
        let read = try Inventory(json: Array(Inventory.standard.json.serialized.utf8))
        #expect(read == Inventory.standard)
    }
}
