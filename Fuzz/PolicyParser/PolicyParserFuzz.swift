// libFuzzer target for the policy parser: the input is one policy file (includes resolve to nothing, so they fail
// cleanly). Built by `make fuzz` with SluiceWire's and SluicePolicy's sources in one module.
//
// Invariants on every input:
// - loading never traps: the file either parses or fails with a PolicyError naming the file;
// - a parsed policy compiles against an inventory and decides a few requests without trapping, and each decision is
//   allow, deny or ask (fail closed: no rule means deny).

struct OneFile: PolicyFileSystem {
    let text: String
    static let path = "/fuzz/30-fuzz.policy"
    func kind(of path: String) -> PolicyFileKind {
        path == Self.path ? .regular : path == "/fuzz" ? .directory : .missing
    }
    func list(_ directory: String) throws(PolicyError) -> [String] {
        guard directory == "/fuzz" else { throw PolicyError(path: directory, message: "not a directory") }
        return ["30-fuzz.policy"]
    }
    func read(_ path: String) throws(PolicyError) -> String {
        guard path == Self.path else { throw PolicyError(path: path, message: "no such file") }
        return text
    }
    func canonical(_ path: String) -> String { path }
}

let inventory = Inventory(domains: [
    Domain(name: "work", tags: ["trusted"], defaultDispVM: "dvm", powerState: "Running"),
    Domain(name: "vault", powerState: "Running"),
    Domain(name: "dvm", templateForDispVMs: true),
])

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPolicyParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self)
    let loader = PolicyLoader(fileSystem: OneFile(text: text), compatDirectory: "/fuzz/compat")
    let policy: Policy
    do {
        policy = try loader.load(directories: ["/fuzz"])
    } catch {
        precondition(!error.path.isEmpty, "a policy error without a path")
        return 0
    }
    let compiled = CompiledPolicy(policy, inventory: inventory)
    for (service, argument, source, target) in [
        ("test.Echo", "", "work", "vault"), ("test.Echo", "x", "vault", "@default"), ("a", "b", "work", "@dispvm"),
        ("qubes.Filecopy", "", "work", "dom0"), ("x", "", "vault", "@dispvm:dvm"),
    ] {
        let request = PolicyRequest(service: service, argument: argument, source: source, target: target)
        if case .success(let decision) = compiled.evaluate(request) {
            precondition([.allow, .deny, .ask].contains(decision.action))
        }
    }
    return 0
}
