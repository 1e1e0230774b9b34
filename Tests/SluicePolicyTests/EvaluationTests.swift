import SluicePolicy
import SluiceWire
import Testing

@Suite("Policy decisions follow qrexec's semantics")
struct EvaluationTests {
    @Test("the first matching rule wins, and no match denies")
    func firstMatch() throws {
        let policy = """
            test.Service * work vault deny
            test.Service * work vault allow
            test.Service * @anyvm @anyvm allow
            """
        let first = try decide(policy, "work", "vault")
        #expect(first.action == .deny)
        #expect(first.reason == .denyRule)
        #expect(first.rule == "30-test:1")
        #expect(try decide(policy, "personal", "vault").rule == "30-test:3")
        let none = try decide(policy, "work", "vault", "other.Service")
        #expect(none.action == .deny)
        #expect(none.reason == .noMatchingRule)
        #expect(none.rule == nil)
        #expect(none.notify)
    }

    @Test("arguments: + is the empty argument, * any, and the call splits at the first +")
    func arguments() throws {
        let policy = """
            test.Service +      @anyvm vault allow
            test.Service +a+b   @anyvm vault allow target=personal
            test.Service *      @anyvm vault ask
            """
        #expect(try decide(policy, "work", "vault", "test.Service").rule == "30-test:1")
        #expect(try decide(policy, "work", "vault", "test.Service+").rule == "30-test:1")
        #expect(try decide(policy, "work", "vault", "test.Service+a+b").target == "personal")
        #expect(try decide(policy, "work", "vault", "test.Service+a").rule == "30-test:3")
    }

    @Test("* and @anyvm: only * includes the admin domain")
    func anyTokens() throws {
        let policy = """
            test.Service * @anyvm @anyvm allow
            test.Service * *      *      deny notify=no
            """
        #expect(try decide(policy, "work", "vault").action == .allow)
        #expect(try decide(policy, "work", "dom0").rule == "30-test:2")
        #expect(try decide(policy, "work", "@adminvm").rule == "30-test:2")
        #expect(try decide(policy, "dom0", "work").rule == "30-test:2")
        #expect(try decide(policy, "work", "@default").rule == "30-test:1")
        #expect(try decide(policy, "work", "@dispvm").rule == "30-test:1")
        #expect(try decide(policy, "work", "@dispvm:personal-dvm").rule == "30-test:1")
        #expect(try decide(policy, "work", "dom0").notify == false)
    }

    @Test("dom0, @adminvm and the zero uuid name the admin domain in rules and requests, reported as dom0")
    func adminForms() throws {
        for token in ["dom0", "@adminvm", "uuid:00000000-0000-0000-0000-000000000000"] {
            let policy = "test.Service * work \(token) allow\n"
            for request in ["dom0", "@adminvm", "uuid:00000000-0000-0000-0000-000000000000"] {
                let decision = try decide(policy, "work", request)
                #expect(decision.action == .allow, "\(token) vs \(request)")
                #expect(decision.target == "dom0")
            }
        }
        #expect(try decide("test.Service * work @anyvm allow target=@adminvm\n", "work", "vault").target == "dom0")
    }

    @Test("@tag: and @type: match qube names, and the literal dom0, but not @adminvm")
    func tagsAndTypes() throws {
        let policy = """
            test.Service * @tag:trusted @tag:secret allow
            test.Service * work @type:TemplateVM allow
            test.Service * work @tag:admin-tag allow
            test.Service * work @type:AdminVM ask
            """
        #expect(try decide(policy, "personal", "vault").action == .allow)
        #expect(try decide(policy, "untrusted", "vault").action == .deny)
        #expect(try decide(policy, "work", "debian-12").rule == "30-test:2")
        #expect(try decide(policy, "work", "dom0").rule == "30-test:3")
        #expect(try decide(policy, "work", "@adminvm").reason == .noMatchingRule)
        #expect(try decide(policy, "work", "@default").reason == .noMatchingRule)
        #expect(try decide("test.Service * @type:AdminVM work allow\n", "dom0", "work").action == .allow)
    }

    @Test("uuid: in a rule matches the qube by name, and a uuid request matches a rule by name")
    func uuids() throws {
        let byUUID =
            "test.Service * uuid:11111111-1111-1111-1111-111111111111 uuid:22222222-2222-2222-2222-222222222222 allow\n"
        #expect(try decide(byUUID, "work", "vault").target == "vault")
        let byName = "test.Service * work vault allow\n"
        let decision = try decide(byName, "work", "uuid:22222222-2222-2222-2222-222222222222")
        #expect(decision.action == .allow)
        #expect(decision.target == "vault")
        #expect(try decide(byName, "work", "uuid:99999999-9999-9999-9999-999999999999").requestedTarget == "@default")
    }

    @Test("an unknown target becomes @default; @default rules match only it; allow needs a target")
    func defaultTarget() throws {
        let policy = """
            test.Service * work @default allow target=vault
            test.Service * personal @default ask default_target=vault
            test.Service * untrusted @anyvm allow
            """
        let unknown = try decide(policy, "work", "no-such-qube")
        #expect(unknown.requestedTarget == "@default")
        #expect(unknown.target == "vault")
        #expect(try decide(policy, "work", "").target == "vault")
        #expect(try decide(policy, "work", "personal").reason == .noMatchingRule)
        let noTarget = try decide(policy, "untrusted", "@default")
        #expect(noTarget.action == .deny)
        #expect(noTarget.reason == .noTarget)
    }

    @Test("target= redirects without re-checking later rules, and a redirect to a missing qube denies")
    func redirect() throws {
        let policy = """
            test.Service * work @anyvm allow target=vault
            test.Service * @anyvm vault deny
            test.Service * personal @anyvm allow target=ghost
            """
        #expect(try decide(policy, "work", "personal").target == "vault")
        #expect(try decide(policy, "personal", "untrusted").reason == .noTarget)
    }

    @Test("@dispvm resolves through the source's default template; @dispvm:X and @dispvm:@tag:T match as qrexec")
    func disposables() throws {
        let policy = """
            test.Service * work @dispvm allow
            test.Service * personal @dispvm allow
            test.Service * untrusted @dispvm:personal-dvm allow
            test.Service * work @dispvm:@tag:dvm-work allow
            """
        #expect(try decide(policy, "work", "@dispvm").target == "@dispvm:work-dvm")
        #expect(try decide(policy, "personal", "@dispvm").reason == .noDefaultDispVM)
        let viaDefault = try decide(policy, "untrusted", "@dispvm")
        #expect(viaDefault.rule == "30-test:3")
        #expect(viaDefault.target == "@dispvm:personal-dvm")
        #expect(try decide(policy, "work", "@dispvm:work-dvm").rule == "30-test:4")
        #expect(try decide(policy, "work", "@dispvm:personal-dvm").reason == .noMatchingRule)
        let compiled = try PolicyFixture(["a.policy": policy]).compile()
        for invalid in [
            "@dispvm:work", "@dispvm:ghost", "@anyvm", "*", "@tag:work", "@type:AppVM", "@dispvm:@tag:x", "@x",
        ] {
            let request = PolicyRequest(service: "test.Service", source: "work", target: invalid)
            guard case .failure(let error) = compiled.evaluate(request) else {
                Issue.record("\(invalid) was accepted")
                continue
            }
            #expect(error.code == .invalidRequest)
        }
    }

    @Test("autostart=no allows only running targets and the admin domain, never a new disposable")
    func autostart() throws {
        let policy = "test.Service * work @anyvm allow autostart=no\ntest.Service * work dom0 allow autostart=no\n"
        let halted = try decide(policy, "work", "vault")
        #expect(halted.reason == .autostartNoAndNotRunning)
        #expect(try decide(policy, "work", "personal").action == .allow)
        #expect(try decide(policy, "work", "personal").autostart == false)
        #expect(try decide(policy, "work", "dom0").action == .allow)
        #expect(try decide(policy, "work", "@dispvm").reason == .autostartNoAndNotRunning)
    }

    @Test("a call to itself is refused as loopback")
    func loopback() throws {
        let decision = try decide("test.Service * @anyvm @anyvm allow\n", "work", "work")
        #expect(decision.action == .deny)
        #expect(decision.reason == .loopback)
        #expect(try decide("test.Service * @anyvm @default allow target=work\n", "work", "").reason == .loopback)
    }

    @Test("notify, user and autostart defaults and values")
    func parameters() throws {
        let allow = try decide("test.Service * work vault allow user=root notify=yes\n", "work", "vault")
        #expect(allow.user == "root")
        #expect(allow.notify)
        #expect(allow.autostart == true)
        #expect(try decide("test.Service * work vault allow user=\n", "work", "vault").user == nil)
        #expect(try decide("test.Service * work vault allow\n", "work", "vault").notify == false)
        #expect(try decide("test.Service * work vault deny\n", "work", "vault").notify)
        #expect(try decide("test.Service * work vault deny notify=no\n", "work", "vault").notify == false)
    }
}

@Suite("Ask collects its choices from the whole policy")
struct AskTests {
    @Test("allow and ask rules add, earlier deny rules remove, the source and internal qubes are dropped")
    func collection() throws {
        let policy = """
            test.Service * work vault deny
            test.Service * work @anyvm ask default_target=personal
            test.Service * work dom0 allow
            test.Service * work @tag:secret allow
            test.Service * personal @anyvm ask
            """
        let decision = try decide(policy, "work", "personal")
        #expect(decision.action == .ask)
        #expect(decision.rule == "30-test:2")
        #expect(decision.defaultTarget == "personal")
        let choices = try #require(decision.targetsForAsk)
        #expect(!choices.contains("vault"))
        #expect(!choices.contains("work"))
        #expect(!choices.contains("sys-gui"))
        #expect(choices.contains("dom0"))
        #expect(choices.contains("@dispvm:work-dvm"))
        #expect(choices.contains("@dispvm:personal-dvm"))
        #expect(!choices.contains("@dispvm"))
        #expect(choices.contains("debian-12"))
        #expect(choices == choices.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }))
    }

    @Test("target= offers exactly that target; a default outside the list is dropped; autostart=no keeps running ones")
    func narrowing() throws {
        #expect(
            try decide("test.Service * work @anyvm ask target=@adminvm\n", "work", "vault").targetsForAsk == ["dom0"])
        let dropped = try decide("test.Service * work vault ask default_target=personal\n", "work", "vault")
        #expect(dropped.targetsForAsk == ["vault"])
        #expect(dropped.defaultTarget == nil)
        let running = try decide(
            "test.Service * work @anyvm ask autostart=no default_target=@dispvm\n", "work", "vault")
        let choices = try #require(running.targetsForAsk)
        #expect(choices.contains("personal"))
        #expect(!choices.contains("vault"))
        #expect(!choices.contains { $0.hasPrefix("@dispvm") })
        #expect(running.defaultTarget == nil)
        let keepsDispVM = try decide("test.Service * work @anyvm ask default_target=@dispvm\n", "work", "vault")
        #expect(keepsDispVM.defaultTarget == "@dispvm:work-dvm")
    }

    @Test("an ask with nothing to choose from denies")
    func empty() throws {
        let decision = try decide("test.Service * work vault deny\ntest.Service * work vault ask\n", "work", "personal")
        #expect(decision.reason == .noMatchingRule)
        let none = try decide("test.Service * work @default ask\ntest.Service * work work allow\n", "work", "")
        #expect(none.action == .deny)
        #expect(none.reason == .askNoTargets)
    }
}

@Suite("RemoteVM relays")
struct RemoteVMTests {
    @Test("a call to a RemoteVM goes to its relay with the transport service, and user= is dropped")
    func rewrite() throws {
        let decision = try decide(
            "test.Service * work @anyvm allow user=root\n", "work", "remote1", "test.Service+argument")
        #expect(decision.target == "relay")
        #expect(decision.service == "qubesair.SSHProxy+remote1+test.Service+argument")
        #expect(decision.user == nil)
        #expect(
            try decide("test.Service * work @anyvm allow\n", "work", "remote-broken").reason == .remoteVMNoTransportRPC)
    }

    @Test("only a RemoteVM's relay may call on its behalf, and policy then sees the RemoteVM as the source")
    func requestedSource() throws {
        let compiled = try PolicyFixture([
            "a.policy": "test.Service * remote1 work allow\ntest.Service * relay work deny\n"
        ]).compile()
        let relayed = try compiled.evaluate(
            PolicyRequest(service: "test.Service", source: "relay", target: "work", requestedSource: "remote1")
        ).get()
        #expect(relayed.action == .allow)
        #expect(relayed.policySource == "remote1")
        for (caller, claimed) in [("work", "remote1"), ("relay", "work"), ("relay", "remote-broken")] {
            let result = compiled.evaluate(
                PolicyRequest(service: "test.Service", source: caller, target: "work", requestedSource: claimed))
            guard case .failure(let error) = result else {
                Issue.record("\(caller) claimed \(claimed)")
                continue
            }
            #expect(error.code == .invalidRequest)
        }
    }
}
