/// A lint finding that does not make the policy unusable.
public struct PolicyWarning: Hashable, Sendable, CustomStringConvertible {
    public var path: String
    public var line: Int?
    public var message: String

    public var description: String { "\(path):\(line.map(String.init) ?? "?"):1: warning: \(message)" }
}

/// Finds rules that can never decide anything: an earlier rule matches every call they would match, whatever
/// the inventory. qrexec has no such check. The analysis is conservative: it warns only when it is sure.
enum ShadowAnalysis {
    static func warnings(_ policy: Policy) -> [PolicyWarning] {
        var warnings: [PolicyWarning] = []
        for (index, rule) in policy.rules.enumerated() {
            if case .dispVMTemplate = rule.source {
                warnings.append(
                    neverMatches(rule, "a @dispvm:... source never matches (calls come from existing qubes)"))
                continue
            }
            if case .dispVMTag = rule.source {
                warnings.append(neverMatches(rule, "a @dispvm:@tag:... source never matches"))
                continue
            }
            if let earlier = policy.rules[..<index].first(where: { covers($0, rule) }) {
                warnings.append(
                    neverMatches(
                        rule,
                        "this rule can never match: \(earlier.origin) (\(earlier.path)) already matches every call it would"
                    ))
            }
        }
        return warnings
    }

    static func neverMatches(_ rule: PolicyRule, _ message: String) -> PolicyWarning {
        PolicyWarning(path: rule.path, line: rule.origin.line, message: message)
    }

    static func covers(_ earlier: PolicyRule, _ later: PolicyRule) -> Bool {
        guard earlier.service == nil || earlier.service == later.service else { return false }
        guard earlier.argument == nil || (later.argument != nil && earlier.argument == later.argument) else {
            return false
        }
        return covers(earlier.source, later.source) && covers(earlier.target, later.target)
    }

    /// Whether every request `narrow` matches, `wide` matches too, in any inventory.
    static func covers(_ wide: PolicyToken, _ narrow: PolicyToken) -> Bool {
        if wide == narrow || wide == .anything { return true }
        guard wide == .anyVM else { return false }
        switch narrow {
        case .qube, .defaultTarget, .dispVM, .dispVMTemplate, .dispVMTag: return true
        case .type(let type): return type != "AdminVM"
        default: return false
        }
    }
}
