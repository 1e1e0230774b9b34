public import SluiceWire

/// A policy bound to an inventory and indexed for fast decisions. Pure: no I/O, no clocks, no randomness.
///
/// Binding resolves every qube name, uuid, tag and type in the rules to integer ids once, and groups rules by
/// service: a decision looks at the rules for its own service and the `*` rules, in policy order, and stops at the
/// first match. Rebind when the inventory changes.
public final class CompiledPolicy: Sendable {
    public let policy: Policy
    public let inventory: Inventory
    let domains: [BoundDomain]
    let nameIndex: [String: Int]
    let uuidIndex: [String: Int]
    let adminIndex: Int
    let rules: [BoundRule]
    /// For each service named in the policy, the indices of its rules and the `*` rules, in policy order.
    let byService: [String: [Int]]
    /// The indices of the `*` service rules, for services the policy does not name.
    let wildcardRules: [Int]
    let argumentIDs: [String: Int]
    /// Hot-path copies, one entry per rule or domain, so a scan touches only plain values.
    let ruleArguments: [Int]
    let ruleSources: [BoundToken]
    let ruleTargets: [BoundToken]
    let ruleNames: [String]
    let domainTypes: [Int]
    let domainIsAdmin: [Bool]
    let domainDefaultDispVM: [Int]
    let domainIsTemplate: [Bool]
    /// Each domain's tags as a bit set of `tagWords` words.
    let tagBits: [UInt64]
    let tagWords: Int

    struct BoundDomain {
        var name: String
        var type: Int
        var tags: [Int]
        var templateForDispVMs: Bool
        var defaultDispVM: Int
        var isRunning: Bool
        var isInternal: Bool
        var isAdmin: Bool
        var isRemote: Bool
        var relayVM: String?
        var transportRPC: String?
    }

    /// A token with every name resolved: `-1` stands for a qube, tag or type that does not exist.
    enum BoundToken: Hashable {
        case anything
        case anyVM
        case admin
        case defaultTarget
        case dispVM
        case dispVMTemplate(Int)
        case dispVMTag(Int)
        case tag(Int)
        case type(Int)
        case domain(Int)
    }

    struct BoundRule {
        var argument: Int
        var source: BoundToken
        var target: BoundToken
        var redirect: BoundToken?
        var defaultTarget: BoundToken?
    }

    /// The target a request names, resolved.
    enum Intended: Hashable {
        /// `@adminvm`: the admin domain by keyword, which `@tag:` and `@type:` do not match.
        case adminKeyword
        case domain(Int)
        case defaultTarget
        case dispVM
        case dispVMTemplate(Int)
    }

    public init(_ policy: Policy, inventory: Inventory) {
        self.policy = policy
        self.inventory = inventory
        var tagIDs: [String: Int] = [:]
        var typeIDs: [String: Int] = [:]
        func intern(_ text: String, _ table: inout [String: Int]) -> Int {
            if let id = table[text] { return id }
            table[text] = table.count
            return table.count - 1
        }
        var names: [String: Int] = [:]
        var uuids: [String: Int] = [:]
        for (index, domain) in inventory.domains.enumerated() {
            names[domain.name] = names[domain.name] ?? index
            if let uuid = domain.uuid { uuids[uuid] = uuids[uuid] ?? index }
        }
        nameIndex = names
        uuidIndex = uuids
        let admin = names["dom0"] ?? 0
        adminIndex = admin
        domains = inventory.domains.enumerated().map { index, domain in
            BoundDomain(
                name: domain.name, type: intern(domain.type, &typeIDs), tags: domain.tags.map { intern($0, &tagIDs) },
                templateForDispVMs: domain.templateForDispVMs,
                defaultDispVM: domain.defaultDispVM.flatMap { names[$0] } ?? -1,
                isRunning: domain.isRunning, isInternal: domain.isInternal,
                isAdmin: index == admin || domain.type == "AdminVM",
                isRemote: domain.type == "RemoteVM", relayVM: domain.relayVM, transportRPC: domain.transportRPC)
        }
        func resolve(_ reference: QubeReference) -> Int {
            switch reference {
            case .name(let name): names[name] ?? -1
            case .uuid(let uuid): uuids[uuid] ?? -1
            }
        }
        func bind(_ token: PolicyToken) -> BoundToken {
            switch token {
            case .anything: .anything
            case .anyVM: .anyVM
            case .adminVM: .admin
            case .defaultTarget: .defaultTarget
            case .dispVM: .dispVM
            case .dispVMTemplate(let reference): .dispVMTemplate(resolve(reference))
            case .dispVMTag(let tag): .dispVMTag(tagIDs[tag] ?? -1)
            case .tag(let tag): .tag(tagIDs[tag] ?? -1)
            case .type(let type): .type(typeIDs[type] ?? -1)
            case .qube(let reference):
                resolve(reference) == admin ? .admin : .domain(resolve(reference))
            }
        }
        var arguments: [String: Int] = [:]
        var services: [String: [Int]] = [:]
        var wildcard: [Int] = []
        var bound: [BoundRule] = []
        for (index, rule) in policy.rules.enumerated() {
            var defaultTarget: BoundToken?
            if case .ask(let ask) = rule.action { defaultTarget = ask.defaultTarget.map(bind) }
            bound.append(
                BoundRule(
                    argument: rule.argument.map { intern($0, &arguments) } ?? -1, source: bind(rule.source),
                    target: bind(rule.target), redirect: rule.action.redirect.map(bind), defaultTarget: defaultTarget))
            if let service = rule.service {
                if services[service] == nil { services[service] = wildcard }
                services[service]!.append(index)
            } else {
                wildcard.append(index)
                for key in services.keys { services[key]!.append(index) }
            }
        }
        rules = bound
        byService = services
        wildcardRules = wildcard
        argumentIDs = arguments
        ruleArguments = bound.map(\.argument)
        ruleSources = bound.map(\.source)
        ruleTargets = bound.map(\.target)
        ruleNames = policy.rules.map(\.origin.description)
        let boundDomains = domains
        domainTypes = boundDomains.map(\.type)
        domainIsAdmin = boundDomains.map(\.isAdmin)
        domainDefaultDispVM = boundDomains.map(\.defaultDispVM)
        domainIsTemplate = boundDomains.map(\.templateForDispVMs)
        let words = max(1, (tagIDs.count + 63) / 64)
        var bits = [UInt64](repeating: 0, count: words * boundDomains.count)
        for (index, domain) in boundDomains.enumerated() {
            for tag in domain.tags { bits[index * words + tag >> 6] |= 1 << UInt64(tag & 63) }
        }
        tagBits = bits
        tagWords = words
    }

    // MARK: Deciding

    /// Decides `request`. Fails only for a request the policy cannot evaluate (`invalid-request`, 301): an
    /// invalid requested target, an unknown source, or a `requested_source` the caller may not use.
    public func evaluate(_ request: PolicyRequest) -> Result<Decision, SluiceError> {
        var sourceName = request.source
        var policySource: String?
        if let requested = request.requestedSource {
            guard let caller = nameIndex[request.source], let remote = nameIndex[requested], domains[remote].isRemote,
                domains[remote].relayVM == domains[caller].name
            else {
                return .failure(
                    SluiceError(
                        .invalidRequest, "\(request.source) may not call on behalf of \(requested): not its RemoteVM"))
            }
            sourceName = requested
            policySource = requested
        }
        guard let source = nameIndex[sourceName] else {
            return .failure(SluiceError(.invalidRequest, "unknown source domain \(sourceName)"))
        }
        let intended: Intended
        switch resolveIntended(request.target) {
        case .success(let value): intended = value
        case .failure(let error): return .failure(error)
        }
        let requestedTarget = describeRequested(intended, text: request.target)
        let candidates = byService[request.service] ?? wildcardRules
        let argument = argumentIDs[request.argument] ?? -2
        for index in candidates {
            let ruleArgument = ruleArguments[index]
            guard ruleArgument == -1 || ruleArgument == argument, matchesSource(ruleSources[index], source),
                matchesTarget(ruleTargets[index], intended, source: source)
            else { continue }
            return .success(
                decide(
                    index, request: request, source: source, intended: intended, requestedTarget: requestedTarget,
                    policySource: policySource))
        }
        return .success(
            .deny(
                .noMatchingRule, requestedTarget: requestedTarget, rule: nil, notify: true, policySource: policySource))
    }

    func resolveIntended(_ text: String) -> Result<Intended, SluiceError> {
        // Most requests name a qube: one dictionary lookup.
        if let first = text.utf8.first, first != UInt8(ascii: "@"), first != UInt8(ascii: "*"),
            let index = nameIndex[text],
            !domainIsAdmin[index]
        {
            return .success(.domain(index))
        }
        switch text {
        case "", "@default": return .success(.defaultTarget)
        case "@adminvm": return .success(.adminKeyword)
        case "dom0": return .success(.domain(adminIndex))
        case "@dispvm": return .success(.dispVM)
        default: break
        }
        if text.hasPrefix("@dispvm:") {
            let value = String(text.dropFirst("@dispvm:".count))
            let index = value.hasPrefix("uuid:") ? uuidIndex[String(value.dropFirst(5))] : nameIndex[value]
            guard let index, domains[index].templateForDispVMs else {
                return .failure(SluiceError(.invalidRequest, "invalid target \(text): not a disposable template"))
            }
            return .success(.dispVMTemplate(index))
        }
        if text.hasPrefix("@") || text == "*" {
            return .failure(SluiceError(.invalidRequest, "invalid target \(text): not a target a caller may request"))
        }
        if text.hasPrefix("uuid:") {
            if String(text.dropFirst(5)) == PolicyToken.adminUUID { return .success(.domain(adminIndex)) }
            return .success(uuidIndex[String(text.dropFirst(5))].map(Intended.domain) ?? .defaultTarget)
        }
        return .success(nameIndex[text].map(Intended.domain) ?? .defaultTarget)
    }

    func describeRequested(_ intended: Intended, text: String) -> String {
        switch intended {
        case .defaultTarget: "@default"
        case .dispVMTemplate(let index): "@dispvm:" + domains[index].name
        default: text
        }
    }

    // MARK: Matching

    func hasTag(_ domain: Int, _ tag: Int) -> Bool {
        tag >= 0 && tagBits[domain * tagWords + tag >> 6] & (1 << UInt64(tag & 63)) != 0
    }

    func matchesSource(_ token: BoundToken, _ source: Int) -> Bool {
        switch token {
        case .anything: true
        case .anyVM: !domainIsAdmin[source]
        case .admin: domainIsAdmin[source]
        case .domain(let index): index == source
        case .tag(let tag): hasTag(source, tag)
        case .type(let type): domainTypes[source] == type
        case .defaultTarget, .dispVM, .dispVMTemplate, .dispVMTag: false
        }
    }

    func isAdmin(_ intended: Intended) -> Bool {
        switch intended {
        case .adminKeyword: true
        case .domain(let index): domainIsAdmin[index]
        default: false
        }
    }

    /// The template a disposable request means for `source`: its own for `@dispvm:X`, the source's default for
    /// `@dispvm`, or -1.
    func dispVMTemplate(_ intended: Intended, source: Int) -> Int {
        switch intended {
        case .dispVMTemplate(let index): index
        case .dispVM: domainDefaultDispVM[source]
        default: -1
        }
    }

    func matchesTarget(_ token: BoundToken, _ intended: Intended, source: Int) -> Bool {
        switch token {
        case .anything: return true
        case .anyVM: return !isAdmin(intended)
        case .admin: return isAdmin(intended)
        case .defaultTarget: return intended == .defaultTarget
        case .dispVM: return intended == .dispVM
        case .domain(let index):
            return index >= 0 && intended == .domain(index)
        case .tag(let tag):
            guard case .domain(let index) = intended else { return false }
            return hasTag(index, tag)
        case .type(let type):
            guard case .domain(let index) = intended else { return false }
            return domainTypes[index] == type
        case .dispVMTemplate(let template):
            return template >= 0 && dispVMTemplate(intended, source: source) == template
        case .dispVMTag(let tag):
            let template = dispVMTemplate(intended, source: source)
            return template >= 0 && domainIsTemplate[template] && hasTag(template, tag)
        }
    }

    // MARK: Actions

    func decide(
        _ index: Int, request: PolicyRequest, source: Int, intended: Intended, requestedTarget: String,
        policySource: String?
    ) -> Decision {
        let rule = policy.rules[index]
        let ruleName = ruleNames[index]
        switch rule.action {
        case .deny(let notify):
            return .deny(
                .denyRule, requestedTarget: requestedTarget, rule: ruleName, notify: notify, policySource: policySource)
        case .allow(let allow):
            func denied(_ reason: DenyReason) -> Decision {
                .deny(
                    reason, requestedTarget: requestedTarget, rule: ruleName, notify: allow.notify,
                    policySource: policySource)
            }
            var target: Intended
            if let redirect = rules[index].redirect {
                guard let resolved = intendedFromRedirect(redirect) else { return denied(.noTarget) }
                target = resolved
            } else {
                target = intended
            }
            if target == .defaultTarget { return denied(.noTarget) }
            if target == .dispVM {
                let template = domains[source].defaultDispVM
                guard template >= 0 else { return denied(.noDefaultDispVM) }
                target = .dispVMTemplate(template)
            }
            if !allow.autostart && !allowsNoAutostart(target) { return denied(.autostartNoAndNotRunning) }
            if case .domain(let index) = target, index == source { return denied(.loopback) }
            if isAdmin(target) && domains[source].isAdmin { return denied(.loopback) }
            var user = allow.user
            var service: String?
            var resolvedName = name(of: target)
            if case .domain(let index) = target, domains[index].isRemote {
                guard let relay = domains[index].relayVM, !relay.isEmpty, let transport = domains[index].transportRPC,
                    !transport.isEmpty
                else { return denied(.remoteVMNoTransportRPC) }
                service = "\(transport)+\(domains[index].name)+\(request.service)+\(request.argument)"
                resolvedName = relay
                user = nil
            }
            return Decision(
                action: .allow, target: resolvedName, requestedTarget: requestedTarget, user: user,
                autostart: allow.autostart,
                notify: allow.notify, rule: ruleName, reason: nil, targetsForAsk: nil, defaultTarget: nil,
                service: service,
                policySource: policySource)
        case .ask(let ask):
            var choices: Set<String>
            if let redirect = rules[index].redirect {
                choices = intendedFromRedirect(redirect).map { [name(of: $0)] } ?? []
            } else {
                choices = targetsForAsk(request, source: source)
            }
            if !ask.autostart {
                choices = choices.filter { choice in
                    guard let intended = try? resolveIntended(choice).get() else { return false }
                    return allowsNoAutostart(intended)
                }
            }
            guard !choices.isEmpty else {
                return .deny(
                    .askNoTargets, requestedTarget: requestedTarget, rule: ruleName, notify: ask.notify,
                    policySource: policySource)
            }
            var preselected: String?
            if let token = rules[index].defaultTarget, var resolved = intendedFromRedirect(token) {
                if resolved == .dispVM {
                    let template = domains[source].defaultDispVM
                    resolved = template >= 0 ? .dispVMTemplate(template) : .dispVM
                }
                let text = name(of: resolved)
                if choices.contains(text) { preselected = text }
            }
            return Decision(
                action: .ask, target: nil, requestedTarget: requestedTarget, user: ask.user, autostart: ask.autostart,
                notify: ask.notify, rule: ruleName, reason: nil,
                targetsForAsk: choices.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }),
                defaultTarget: preselected,
                service: nil, policySource: policySource)
        }
    }

    /// A `target=` or `default_target=` value as a target; nil when it names no existing qube or template.
    func intendedFromRedirect(_ token: BoundToken) -> Intended? {
        switch token {
        case .admin: return .domain(adminIndex)
        case .dispVM: return .dispVM
        case .domain(let index): return index >= 0 ? .domain(index) : nil
        case .dispVMTemplate(let index):
            return index >= 0 && domains[index].templateForDispVMs ? .dispVMTemplate(index) : nil
        default: return nil
        }
    }

    func allowsNoAutostart(_ target: Intended) -> Bool {
        if isAdmin(target) { return true }
        switch target {
        case .domain(let index): return domains[index].isRunning
        default: return false
        }
    }

    /// How a resolved target is reported: `dom0`, a name, `@dispvm:TEMPLATE`, or the keyword.
    func name(of target: Intended) -> String {
        if isAdmin(target) { return "dom0" }
        switch target {
        case .domain(let index): return domains[index].name
        case .dispVMTemplate(let index): return "@dispvm:" + domains[index].name
        case .dispVM: return "@dispvm"
        case .defaultTarget: return "@default"
        case .adminKeyword: return "dom0"
        }
    }

    // MARK: Ask targets

    /// The choices of an ask without `target=`: walking every rule whose service, argument and source match,
    /// bottom-up, allow and ask rules add their target's expansion and deny rules remove theirs (so earlier rules
    /// win); `@dispvm` becomes the source's default template, `@adminvm` becomes `dom0`, and the source and
    /// internal qubes are removed.
    func targetsForAsk(_ request: PolicyRequest, source: Int) -> Set<String> {
        let argument = argumentIDs[request.argument] ?? -2
        var targets: Set<String> = []
        for index in (byService[request.service] ?? wildcardRules).reversed() {
            let rule = rules[index]
            guard rule.argument == -1 || rule.argument == argument, matchesSource(rule.source, source) else { continue }
            let expansion = expand(rule.redirect ?? rule.target)
            if case .deny = policy.rules[index].action {
                targets.subtract(expansion)
            } else {
                targets.formUnion(expansion)
            }
        }
        if targets.remove("@dispvm") != nil {
            let template = domains[source].defaultDispVM
            if template >= 0 { targets.insert("@dispvm:" + domains[template].name) }
        }
        if targets.remove("@adminvm") != nil { targets.insert("dom0") }
        targets.remove(domains[source].name)
        for domain in domains where domain.isInternal { targets.remove(domain.name) }
        return targets
    }

    /// Every target a token stands for in an ask dialog.
    func expand(_ token: BoundToken) -> Set<String> {
        switch token {
        case .anything:
            return expand(.anyVM).union(["@adminvm"])
        case .anyVM:
            var names: Set<String> = ["@dispvm"]
            for domain in domains {
                if !domain.isAdmin { names.insert(domain.name) }
                if domain.templateForDispVMs { names.insert("@dispvm:" + domain.name) }
            }
            return names
        case .admin: return ["@adminvm"]
        case .defaultTarget: return []
        case .dispVM: return ["@dispvm"]
        case .domain(let index): return index >= 0 ? [domains[index].name] : []
        case .tag(let tag):
            return Set(
                domains.indices.filter { hasTag($0, tag) }.map { domains[$0].isAdmin ? "@adminvm" : domains[$0].name })
        case .type(let type):
            return Set(domains.filter { $0.type == type }.map { $0.isAdmin ? "@adminvm" : $0.name })
        case .dispVMTemplate(let index):
            return index >= 0 && domains[index].templateForDispVMs ? ["@dispvm:" + domains[index].name] : []
        case .dispVMTag(let tag):
            return Set(
                domains.indices.filter { domains[$0].templateForDispVMs && hasTag($0, tag) }.map {
                    "@dispvm:" + domains[$0].name
                })
        }
    }
}
