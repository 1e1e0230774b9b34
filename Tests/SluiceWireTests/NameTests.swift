import SluiceWire
import Testing

@Suite("Names are validated as qrexec validates them, rejecting where it rewrites")
struct NameTests {
    @Test(
        "service names",
        arguments: [
            ("qubes.Filecopy", true), ("a", true), ("my-service_1.2", true), ("", false), (".", false), ("..", false),
            ("a+b", false), ("a/b", false), ("a$b", false), ("a b", false), ("@x", false), ("é", false),
            (String(repeating: "s", count: 255), true), (String(repeating: "s", count: 256), false),
        ])
    func serviceNames(_ text: String, _ valid: Bool) {
        #expect(((try? ServiceName(text)) != nil) == valid, "\(text)")
    }

    @Test(
        "arguments",
        arguments: [
            ("", true), ("x", true), ("a+b", true), ("-rf", true), ("a b", false), ("a$b", false), ("a/b", false),
            ("a:b", false), ("@x", false),
        ])
    func arguments(_ text: String, _ valid: Bool) {
        #expect(((try? ServiceArgument(text)) != nil) == valid, "\(text)")
    }

    @Test(
        "domain names",
        arguments: [
            ("work", true), ("dom0", true), ("disp1234", true), ("a.b-c_d", true), ("", false), ("0work", false),
            ("-work", false), ("@anyvm", false), ("wo rk", false), (String(repeating: "d", count: 31), true),
            (String(repeating: "d", count: 32), false),
        ])
    func domainNames(_ text: String, _ valid: Bool) {
        #expect(((try? DomainName(text)) != nil) == valid, "\(text)")
    }

    @Test(
        "requested targets",
        arguments: [
            ("work", true), ("@default", true), ("@dispvm:work-dvm", true), ("uuid:c9a1-00ff", true),
            ("@adminvm", true),
            ("", false), ("a/b", false), ("a b", false), ("$dispvm", false), (String(repeating: "t", count: 64), false),
        ])
    func targets(_ text: String, _ valid: Bool) {
        #expect(((try? TargetName(text)) != nil) == valid, "\(text)")
    }

    @Test("SERVICE+ARG splits at the first plus, and a bare service has the empty argument")
    func serviceCallParsing() throws {
        let call = try ServiceCall(parsing: "svc+a+b")
        #expect(call.service.rawValue == "svc")
        #expect(call.argument.rawValue == "a+b")
        #expect(call.fullName == "svc+a+b")
        let bare = try ServiceCall(parsing: "svc")
        #expect(bare.argument.isEmpty)
        #expect(bare.fullName == "svc+")
        #expect(try ServiceCall(parsing: "svc+").argument.isEmpty)
    }

    @Test("SERVICE+ARG over 65 000 bytes is its own error")
    func serviceCallLength() throws {
        let argument = String(repeating: "a", count: 65_000 - 4)
        #expect((try? ServiceCall(parsing: "svc+" + argument)) != nil)
        do {
            _ = try ServiceCall(parsing: "svc+" + argument + "a")
            Issue.record("accepted 65 001 bytes")
        } catch {
            #expect(error.code == .serviceCallTooLong)
        }
        do {
            _ = try ServiceCall(parsing: "+arg")
            Issue.record("accepted an empty service")
        } catch {
            #expect(error.code == .invalidServiceName)
        }
    }

    @Test("error messages quote hostile names safely")
    func quoting() {
        do {
            _ = try ServiceName("a\u{1B}[31mred")
            Issue.record("accepted an escape sequence")
        } catch {
            #expect(error.message.contains("\\x1B"))
            #expect(!error.message.contains("\u{1B}"))
        }
    }
}

@Suite("Version negotiation")
struct HelloTests {
    @Test("the highest common version wins")
    func negotiation() throws {
        #expect(try Hello(minVersion: 1, maxVersion: 3).negotiate(with: Hello(minVersion: 2, maxVersion: 5)) == 3)
        #expect(try Hello.current.negotiate(with: .current) == 1)
    }

    @Test("disjoint ranges are an unsupported-version error")
    func disjoint() {
        do {
            _ = try Hello(minVersion: 1, maxVersion: 1).negotiate(with: Hello(minVersion: 2, maxVersion: 3))
            Issue.record("negotiated disjoint ranges")
        } catch {
            #expect(error.code == .unsupportedVersion)
        }
    }
}
