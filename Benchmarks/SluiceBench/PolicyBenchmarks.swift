import Foundation
import SluicePolicy
import SluiceTesting

/// Decisions per second for a synthetic 10 000-rule policy (100 services x 100 rules, with tags and @anyvm),
/// for requests that match and requests that match nothing, against a naive linear scan that compares strings
/// rule by rule (as qrexec's Python evaluator does); and the time to load and compile that policy.
enum PolicyBenchmarks {
    static let services = 100
    static let rulesPerService = 100
    static let domainCount = 60
    /// Rules target d0...d39; matching requests come from d40...d59, which carry every tag, so no call is a loopback.
    static let targetCount = 40
    static let tagCount = 20

    static var inventory: Inventory {
        Inventory(
            domains: (0..<domainCount).map { index in
                Domain(name: "d\(index)", tags: ["t\(index % tagCount)"], powerState: "Running")
            })
    }

    static func policyText() -> String {
        var lines: [String] = ["# synthetic: \(services) services x \(rulesPerService) rules"]
        for service in 0..<services {
            for rule in 0..<rulesPerService - 1 {
                lines.append("svc.\(service) +arg\(rule) @tag:t\(rule % tagCount) d\(rule % targetCount) allow")
            }
            lines.append("svc.\(service) +last @anyvm @anyvm ask")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func run() throws -> [Row] {
        let directory = try TemporaryDirectory(prefix: "sluice-policy-bench")
        defer { directory.remove() }
        try policyText().write(toFile: directory.path + "/50-synthetic.policy", atomically: false, encoding: .utf8)
        let inventory = inventory

        var loads: [Double] = []
        var compiled: CompiledPolicy?
        for _ in 0..<5 {
            let start = Harness.now()
            let policy = try PolicyLoader().load(directories: [directory.path])
            compiled = CompiledPolicy(policy, inventory: inventory)
            loads.append(Double(Harness.now() - start) / 1e6)
        }
        let policy = compiled!
        precondition(policy.policy.rules.count == services * rulesPerService)

        // Matching requests: rule k of service s, from a qube carrying tag t(k % 20) to d(k % 40): 50 rules in on average.
        let matching: [PolicyRequest] = (0..<1_000).map { index in
            let service = index % services
            let rule = (index * 7) % (rulesPerService - 1)
            let source = (rule % tagCount) + targetCount
            return PolicyRequest(
                service: "svc.\(service)", argument: "arg\(rule)", source: "d\(source)",
                target: "d\(rule % targetCount)")
        }
        let nonMatching: [PolicyRequest] = (0..<1_000).map { index in
            PolicyRequest(
                service: "svc.\(index % services)", argument: "none\(index)", source: "d\(index % domainCount)",
                target: "d1")
        }
        for request in matching { precondition((try? policy.evaluate(request).get().action) == .allow) }
        for request in nonMatching { precondition((try? policy.evaluate(request).get().reason) == .noMatchingRule) }

        let naive = NaiveScan(policy.policy, inventory)
        for request in matching.prefix(50) { precondition(naive.firstMatch(request) != nil) }
        let indexedMatching = decisionsPerSecond(matching) { _ = policy.evaluate($0) }
        let indexedMissing = decisionsPerSecond(nonMatching) { _ = policy.evaluate($0) }
        let naiveMatching = decisionsPerSecond(matching) { _ = naive.firstMatch($0) }
        let naiveMissing = decisionsPerSecond(nonMatching) { _ = naive.firstMatch($0) }
        loads.sort()
        return [
            Row(
                name: "policy decisions/s, 10 000 rules, matching requests (one core)",
                value: format(indexedMatching / 1e6, decimals: 2) + " M",
                baseline: format(naiveMatching / 1e6, decimals: 3) + " M",
                baselineName: "naive linear scan comparing strings",
                verdict: "goal >= 1 M: \(format(indexedMatching / naiveMatching, decimals: 0))x"),
            Row(
                name: "policy decisions/s, 10 000 rules, no matching rule (one core)",
                value: format(indexedMissing / 1e6, decimals: 2) + " M",
                baseline: format(naiveMissing / 1e6, decimals: 3) + " M",
                baselineName: "naive linear scan comparing strings",
                verdict: "goal >= 1 M: \(format(indexedMissing / naiveMissing, decimals: 0))x"),
            Row(
                name: "policy load + parse + compile, 10 000 rules (ms, median of 5)",
                value: format(loads[2], decimals: 1), baseline: "-", baselineName: "-", verdict: "goal <= 100"),
        ]
    }

    static func decisionsPerSecond(_ requests: [PolicyRequest], _ body: (PolicyRequest) -> Void) -> Double {
        var rounds = 1
        while true {
            let start = Harness.now()
            for _ in 0..<rounds { for request in requests { body(request) } }
            let elapsed = Harness.now() - start
            if elapsed > 300_000_000 { return Double(rounds * requests.count) / (Double(elapsed) / 1e9) }
            rounds *= 2
        }
    }
}

/// The baseline: first match by walking every rule and comparing strings, resolving tags through dictionaries
/// on every check. Only the matching is timed (no ask collection), which favours the baseline.
struct NaiveScan {
    let rules: [PolicyRule]
    let tags: [String: Set<String>]

    init(_ policy: Policy, _ inventory: Inventory) {
        rules = policy.rules
        tags = Dictionary(uniqueKeysWithValues: inventory.domains.map { ($0.name, Set($0.tags)) })
    }

    func matches(_ token: PolicyToken, _ name: String) -> Bool {
        switch token {
        case .anything: true
        case .anyVM: name != "dom0"
        case .qube(.name(let qube)): qube == name
        case .tag(let tag): tags[name]?.contains(tag) ?? false
        default: false
        }
    }

    func firstMatch(_ request: PolicyRequest) -> Int? {
        for (index, rule) in rules.enumerated() {
            if let service = rule.service, service != request.service { continue }
            if let argument = rule.argument, argument != request.argument { continue }
            if matches(rule.source, request.source) && matches(rule.target, request.target) { return index }
        }
        return nil
    }
}
