import Foundation
import SluicePolicy
import SluiceWire
import Testing

struct RejectedLine: CustomTestStringConvertible, Sendable {
    var line: String
    var column: Int
    var fragment: String
    var testDescription: String { line }
    init(_ line: String, column: Int, _ fragment: String) {
        self.line = line
        self.column = column
        self.fragment = fragment
    }
}

@Suite("Every line qrexec's parser rejects makes the whole policy unusable")
struct ParserRejectionTests {
    static let lines: [RejectedLine] = [
        // 1. fields
        .init("test.Service * work vault", column: 1, "wrong number of fields"),
        .init("test.Service", column: 1, "wrong number of fields"),
        // 2. service characters
        .init("test+Service * work vault allow", column: 1, "invalid character"),
        .init("test/Service * work vault allow", column: 1, "invalid character"),
        .init("test$Service * work vault allow", column: 1, "invalid character"),
        .init("@test * work vault allow", column: 1, "invalid character"),
        // 3, 4. arguments
        .init("test.Service arg work vault allow", column: 14, "does not start with +"),
        .init("test.Service +a/b work vault allow", column: 14, "invalid character"),
        .init("test.Service +a$b work vault allow", column: 14, "invalid character"),
        // 5. specific argument with * service
        .init("* +arg work vault allow", column: 3, "only * argument allowed for * service"),
        // 6. tokens
        .init("test.Service * @unknown vault allow", column: 16, "invalid source token"),
        .init("test.Service * work @unknown allow", column: 21, "invalid target token"),
        .init("test.Service * @tag: vault allow", column: 16, "empty @tag:"),
        .init("test.Service * work @type: allow", column: 21, "empty @type:"),
        .init("test.Service * work @dispvm: allow", column: 21, "empty @dispvm:"),
        .init("test.Service * work @dispvm:@tag: allow", column: 21, "empty @dispvm:@tag:"),
        .init("test.Service * @uuid:1234 vault allow", column: 16, "invalid source token"),
        .init("test.Service * work @dispvm:@anyvm allow", column: 21, "invalid target token"),
        // 7. @default and @dispvm as source
        .init("test.Service * @default vault allow", column: 16, "cannot be a source"),
        .init("test.Service * @dispvm vault allow", column: 16, "cannot be a source"),
        // 8. action
        .init("test.Service * work vault permit", column: 27, "invalid action"),
        .init("test.Service * work vault allow,target=dom0", column: 27, "invalid action"),
        // 9. params without =
        .init("test.Service * work vault allow # comment", column: 33, "expected KEY=VALUE"),
        .init("test.Service * work vault allow target", column: 33, "expected KEY=VALUE"),
        // 10. duplicates
        .init("test.Service * work vault allow notify=yes notify=no", column: 44, "given twice"),
        // 11. yes/no
        .init("test.Service * work vault allow notify=true", column: 33, "only yes or no"),
        .init("test.Service * work vault ask autostart=1", column: 31, "only yes or no"),
        // 12. params not accepted by the action
        .init("test.Service * work vault deny target=dom0", column: 32, "invalid parameter"),
        .init("test.Service * work vault deny user=root", column: 32, "invalid parameter"),
        .init("test.Service * work vault deny autostart=no", column: 32, "invalid parameter"),
        .init("test.Service * work vault deny default_target=dom0", column: 32, "invalid parameter"),
        .init("test.Service * work vault allow default_target=dom0", column: 33, "invalid parameter"),
        .init("test.Service * work vault allow color=red", column: 33, "invalid parameter"),
        // 13. redirect tokens
        .init("test.Service * work vault allow target=@anyvm", column: 40, "cannot be a redirect"),
        .init("test.Service * work vault allow target=*", column: 40, "cannot be a redirect"),
        .init("test.Service * work vault allow target=@default", column: 40, "cannot be a redirect"),
        .init("test.Service * work vault allow target=@tag:x", column: 40, "cannot be a redirect"),
        .init("test.Service * work vault ask default_target=@type:AppVM", column: 46, "cannot be a redirect"),
        .init("test.Service * work vault ask target=@dispvm:@tag:x", column: 38, "cannot be a redirect"),
        .init("test.Service * work vault allow target=", column: 40, "empty"),
        // 14. allow to @default without target=
        .init("test.Service * work @default allow", column: 21, "must specify target="),
        // 15. directives
        .init("!unknown foo", column: 1, "invalid directive"),
        .init("!include", column: 1, "invalid number of params"),
        .init("!include a b", column: 1, "invalid number of params"),
        .init("!include-dir", column: 1, "invalid number of params"),
        .init("!include-service test.Service * ", column: 1, "invalid number of params"),
        .init("!compat-4.0 now", column: 1, "invalid number of params"),
        .init("!include missing.policy", column: 10, "not a file"),
        .init("!include-dir missing-dir", column: 14, "not a directory"),
        .init("!include-service test/Service * other", column: 18, "invalid character"),
        .init("!include-service * +arg other", column: 20, "only * argument"),
    ]

    @Test("each rejected line is reported with file, line and column", arguments: lines)
    func rejected(_ rejected: RejectedLine) throws {
        let fixture = try PolicyFixture(["30-test.policy": "# a comment\n\n" + rejected.line + "\n"])
        defer { fixture.directory.remove() }
        let error = try #require(fixture.loadError())
        #expect(error.path.hasSuffix("/30-test.policy"))
        #expect(error.line == 3)
        #expect(error.column == rejected.column, "\(error)")
        #expect(error.message.contains(rejected.fragment), "\(error)")
        #expect(error.sluiceError.code == .policyInvalid)
    }

    @Test("a file name outside [0-9a-z_.-] makes the policy unusable; dotfiles and other suffixes are ignored")
    func fileNames() throws {
        let bad = try PolicyFixture(["30-Work.policy": "test.Service * work vault allow\n"])
        defer { bad.directory.remove() }
        #expect(bad.loadError()?.message.contains("invalid file name") == true)
        let ignored = try PolicyFixture([
            "30-ok.policy": "test.Service * work vault allow\n", ".30-hidden.policy": "garbage\n",
            "30-ok.policy.swp": "garbage\n",
            "30-ok.policy~": "garbage\n", "README": "garbage\n", "UPPER.txt": "garbage\n",
        ])
        defer { ignored.directory.remove() }
        #expect(try ignored.load().rules.count == 1)
    }

    @Test("an include cycle is an error, not a crash")
    func includeCycle() throws {
        let fixture = try PolicyFixture(
            ["30-a.policy": "!include include/b\n"],
            extra: ["policy.d/include/b": "!include include/c\n", "policy.d/include/c": "!include include/b\n"])
        defer { fixture.directory.remove() }
        #expect(fixture.loadError()?.message.contains("include cycle") == true)
    }
}

@Suite("Policy files, ordering and includes")
struct LoaderTests {
    @Test("files are read in C-locale order of their names, across directories, the first directory winning")
    func ordering() throws {
        let fixture = try PolicyFixture(
            [
                "20-y.policy": "test.Service * work vault deny\n", "100-x.policy": "test.Service * work vault allow\n",
                "50-shared.policy": "test.Service * personal vault allow\n",
            ],
            extra: [
                "runtime/50-shared.policy": "test.Service * personal vault deny\n",
                "runtime/10_a.policy": "# nothing\n",
            ])
        defer { fixture.directory.remove() }
        let policy = try PolicyLoader().load(directories: [
            fixture.directory.path + "/runtime", fixture.policyDirectory,
        ])
        let compiled = CompiledPolicy(policy, inventory: .standard)
        #expect(try decide(compiled, "work", "vault").rule == "100-x:1")
        #expect(try decide(compiled, "personal", "vault").action == .deny)
        #expect(
            policy.files.map { ($0 as NSString).lastPathComponent } == [
                "100-x.policy", "10_a.policy", "20-y.policy", "50-shared.policy",
            ])
    }

    @Test("!include and !include-dir resolve against the top-level file's directory and splice rules in place")
    func includes() throws {
        let fixture = try PolicyFixture(
            [
                "30-main.policy": """
                test.Service * work vault deny
                !include include/extra
                !include-dir include.d
                test.Service * @anyvm @anyvm deny
                """
            ],
            extra: [
                "policy.d/include/extra": "test.Service * personal vault allow\n",
                "policy.d/include.d/10-one.policy": "test.Service * untrusted vault allow\n",
                "policy.d/include.d/ignored.txt": "garbage\n",
            ])
        defer { fixture.directory.remove() }
        let compiled = try fixture.compile()
        #expect(try decide(compiled, "personal", "vault").rule == "extra:1")
        #expect(try decide(compiled, "untrusted", "vault").rule == "10-one:1")
        #expect(try decide(compiled, "work", "vault").rule == "30-main:1")
        #expect(try decide(compiled, "personal", "work").rule == "30-main:4")
    }

    @Test("!include-service reads the old format: $ keywords, comma parameters, $include:")
    func includeService() throws {
        let fixture = try PolicyFixture(
            ["30-main.policy": "!include-service test.Service +arg include/old\n"],
            extra: [
                "policy.d/include/old":
                    "# old format\n$anyvm $default allow,target=vault,user=root\n$include:include/more\n",
                "policy.d/include/more": "work $dispvm allow\n",
            ])
        defer { fixture.directory.remove() }
        let compiled = try fixture.compile()
        let decision = try decide(compiled, "work", "", "test.Service+arg")
        #expect(decision.target == "vault")
        #expect(decision.user == "root")
        #expect(decision.rule == "old:2")
        #expect(try decide(compiled, "work", "@dispvm", "test.Service+arg").rule == "more:1")
        #expect(try decide(compiled, "work", "", "test.Service+other").reason == .noMatchingRule)
    }

    @Test("!compat-4.0 reads old files by service, then argument, the bare file last, with implicit denies")
    func compat() throws {
        let fixture = try PolicyFixture(
            ["35-compat.policy": "!compat-4.0\n", "90-default.policy": "* * @anyvm @anyvm allow\n"],
            compat: [
                "test.Service": "personal vault allow\n",
                "test.Service+arg": "work vault allow\n",
                "test.Service+arg.rpmnew": "@anyvm @anyvm allow\n",
                ".hidden": "@anyvm @anyvm allow\n",
            ])
        defer { fixture.directory.remove() }
        let compiled = try fixture.compile()
        #expect(try decide(compiled, "work", "vault", "test.Service+arg").rule == "test.Service+arg:1")
        let implicit = try decide(compiled, "personal", "vault", "test.Service+arg")
        #expect(implicit.action == .deny)
        #expect(implicit.rule == "test.Service+arg:implicit")
        #expect(try decide(compiled, "personal", "vault", "test.Service").rule == "test.Service:1")
        #expect(try decide(compiled, "work", "vault", "test.Service").rule == "90-default:1")
    }
}

@Suite("Hot reload swaps the policy atomically and fails closed")
struct PolicyStoreTests {
    @Test("a broken edit denies everything; a fix restores it")
    func reload() throws {
        let fixture = try PolicyFixture(["30-test.policy": "test.Service * work vault allow\n"])
        defer { fixture.directory.remove() }
        let store = PolicyStore(state: .unusable(PolicyError(path: "-", message: "not loaded yet")))
        let request = PolicyRequest(service: "test.Service", source: "work", target: "vault")
        #expect(try store.evaluate(request).get().reason == .policyUnusable)
        #expect(store.reload(inventory: .standard) { () throws(PolicyError) in try fixture.load() } == nil)
        #expect(try store.evaluate(request).get().action == .allow)
        try fixture.write("policy.d/40-broken.policy", "test.Service * work vault allow,target=dom0\n")
        let error = store.reload(inventory: .standard) { () throws(PolicyError) in try fixture.load() }
        #expect(error?.line == 1)
        let denied = try store.evaluate(request).get()
        #expect(denied.action == .deny)
        #expect(denied.reason == .policyUnusable)
        try fixture.write("policy.d/40-broken.policy", "# fixed\n")
        #expect(store.reload(inventory: .standard) { () throws(PolicyError) in try fixture.load() } == nil)
        #expect(try store.evaluate(request).get().action == .allow)
        #expect(store.generation == 3)
    }

    @Test("a new inventory rebinds names without reloading files")
    func inventoryUpdate() throws {
        let fixture = try PolicyFixture(["30-test.policy": "test.Service * work newcomer allow\n"])
        defer { fixture.directory.remove() }
        let store = PolicyStore(state: .usable(try fixture.compile()))
        let request = PolicyRequest(service: "test.Service", source: "work", target: "newcomer")
        #expect(try store.evaluate(request).get().reason == .noMatchingRule)
        store.update(
            inventory: Inventory(
                domains: Inventory.standard.domains + [Domain(name: "newcomer", powerState: "Running")]))
        #expect(try store.evaluate(request).get().target == "newcomer")
    }
}

@Suite("Lint")
struct LintTests {
    @Test("lint reports every bad line and the rules that can never match")
    func lint() throws {
        let fixture = try PolicyFixture([
            "30-a.policy":
                "test.Service * work vault allow\ntest.Service * work vault permit\ntest.Service * @anyvm @anyvm deny\ntest.Service * work vault ask\n",
            "40-b.policy":
                "test.Service * work vault allow,target=x\n* * @anyvm @anyvm deny\nother.Service +x work @type:AppVM allow\n",
        ])
        defer { fixture.directory.remove() }
        let (errors, warnings) = PolicyLoader().lint(paths: [fixture.policyDirectory])
        #expect(errors.map(\.line) == [2, 1])
        #expect(errors.map { ($0.path as NSString).lastPathComponent } == ["30-a.policy", "40-b.policy"])
        #expect(warnings.map(\.line) == [4, 3])
        #expect(warnings[0].message.contains("30-a:1"))
        #expect(warnings[1].message.contains("40-b:2"))
    }
}
