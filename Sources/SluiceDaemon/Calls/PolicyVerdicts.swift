import Logging
import SluiceCalls
import SluicePolicy
import SluiceWire

/// Turns the policy's decision on a request into a verdict the call table can act on: names resolved to the domain
/// ids the daemon serves, `@dispvm` targets to their templates. Calls from the admin domain are not policy-checked,
/// as in qrexec.
struct PolicyVerdicts: Sendable {
    let policy: PolicyStore
    let roster: DomainRoster
    let logger: Logger

    func verdict(_ question: PolicyQuestion) -> Verdict {
        let request = question.request
        if question.source == .admin {
            let target = request.target.rawValue == "@adminvm" ? "dom0" : request.target.rawValue
            return Verdict(.allow(plan(for: target, source: question.sourceName, autostart: true)))
        }
        let decision: Decision
        switch policy.evaluate(
            PolicyRequest(
                service: request.call.service.rawValue, argument: request.call.argument.rawValue,
                source: question.sourceName.rawValue, target: request.target.rawValue,
                requestedSource: request.requestedSource?.rawValue))
        {
        case .success(let value): decision = value
        case .failure(let error):
            logger.info("invalid request from \(question.sourceName): \(error.message)")
            return Verdict(.refuse(reason: "invalid-request", code: .refusedByPolicy, message: "Request refused"))
        }
        let user = decision.user.flatMap { try? UserName($0) }
        let action: Verdict.Action
        switch decision.action {
        case .deny:
            action = .refuse(
                reason: decision.reason?.rawValue ?? "denied", code: .refusedByPolicy, message: "Request refused")
        case .ask:
            action = .ask(
                AskQuestion(
                    source: question.sourceName.rawValue, service: request.call.service.rawValue,
                    argument: request.call.argument.rawValue, targets: decision.targetsForAsk ?? [],
                    defaultTarget: decision.defaultTarget, autostart: decision.autostart ?? true))
        case .allow:
            action = .allow(
                plan(for: decision.target ?? "", source: question.sourceName, autostart: decision.autostart ?? true))
        }
        return Verdict(action, rule: decision.rule, requestedTarget: decision.requestedTarget, user: user)
    }

    /// The plan for the user's answer to `question`: nil (denied) unless it names a target that was offered.
    func plan(answering question: AskQuestion, with answer: String?) -> TargetPlan? {
        guard let answer, question.targets.contains(answer), let source = try? DomainName(question.source) else {
            return nil
        }
        return plan(for: answer, source: source, autostart: question.autostart)
    }

    /// Where a call to `target` runs: a domain, or a new disposable. `@dispvm:NAME` names its template; a bare
    /// `@dispvm` (possible only from the admin domain, whose requests the policy does not resolve) is the source's
    /// default.
    func plan(for target: String, source: DomainName, autostart: Bool) -> TargetPlan {
        if target.hasPrefix("@dispvm") {
            let inventory = roster.inventory
            let name: String?
            if target.hasPrefix("@dispvm:") {
                name = String(target.dropFirst("@dispvm:".count))
            } else {
                name = target == "@dispvm" ? inventory.domain(named: source.rawValue)?.defaultDispVM : nil
            }
            guard let name, inventory.domain(named: name)?.templateForDispVMs == true,
                let template = try? DomainName(name)
            else { return .unresolvable(name: target, reason: "no-disposable-template") }
            return .disposable(template: template)
        }
        guard let name = try? DomainName(target) else {
            return .unresolvable(name: target, reason: "target-not-running")
        }
        return .domain(name: name, id: roster.id(of: target), autostart: autostart)
    }
}
