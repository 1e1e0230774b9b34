/// The call graph a policy allows, as Graphviz DOT: an edge from each source to each target it may call (solid,
/// allow) or may be asked about (dashed, ask), labelled with the service. Found by evaluating the policy for
/// every source, every target name, `@default` and `@dispvm`, and every argument the policy names.
public enum PolicyGraph {
    public struct Edge: Hashable, Sendable, Comparable {
        public var source: String
        public var target: String
        public var call: String
        public var asks: Bool

        public static func < (lhs: Edge, rhs: Edge) -> Bool {
            (lhs.source, lhs.target, lhs.call, lhs.asks ? 1 : 0) < (rhs.source, rhs.target, rhs.call, rhs.asks ? 1 : 0)
        }
    }

    /// The edges for `service` (nil: every service the policy names).
    public static func edges(_ compiled: CompiledPolicy, service: String? = nil) -> [Edge] {
        var calls: [String: Set<String>] = [:]
        for rule in compiled.policy.rules {
            guard let name = rule.service, service == nil || service == name else { continue }
            calls[name, default: [""]].insert(rule.argument ?? "")
        }
        if let service, calls[service] == nil { calls[service] = [""] }
        let names = compiled.inventory.domains.map(\.name)
        var edges: Set<Edge> = []
        for (name, arguments) in calls {
            for argument in arguments {
                for source in compiled.inventory.domains where source.type != "AdminVM" {
                    for target in names + ["@default", "@dispvm"] {
                        let request = PolicyRequest(
                            service: name, argument: argument, source: source.name, target: target)
                        guard case .success(let decision) = compiled.evaluate(request) else { continue }
                        let call = argument.isEmpty ? name : name + "+" + argument
                        switch decision.action {
                        case .allow:
                            edges.insert(
                                Edge(source: source.name, target: decision.target ?? target, call: call, asks: false))
                        case .ask:
                            for choice in decision.targetsForAsk ?? [] {
                                edges.insert(Edge(source: source.name, target: choice, call: call, asks: true))
                            }
                        case .deny:
                            break
                        }
                    }
                }
            }
        }
        return edges.sorted()
    }

    public static func dot(_ edges: [Edge]) -> String {
        var lines = ["digraph policy {", "  rankdir=LR;", "  node [shape=box];"]
        for edge in edges {
            let style = edge.asks ? "dashed" : "solid"
            lines.append(
                "  \(quote(edge.source)) -> \(quote(edge.target)) [label=\(quote(edge.call)), style=\(style)];")
        }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }

    static func quote(_ text: String) -> String {
        "\"" + text.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
    }
}
