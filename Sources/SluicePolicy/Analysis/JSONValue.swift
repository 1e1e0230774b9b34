/// A JSON value for the policy tool's output, serialised with sorted keys so the output is stable.
public indirect enum JSONValue: Hashable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public var serialized: String {
        switch self {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .int(let value): return String(value)
        case .string(let value): return Self.quote(value)
        case .array(let values): return "[" + values.map(\.serialized).joined(separator: ",") + "]"
        case .object(let members):
            return "{"
                + members.keys.sorted().map { Self.quote($0) + ":" + members[$0]!.serialized }.joined(separator: ",")
                + "}"
        }
    }

    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

extension Decision {
    /// The `sluice-policy eval --json` object.
    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "action": .string(action.rawValue),
            "target": target.map(JSONValue.string) ?? .null,
            "requested_target": .string(requestedTarget),
            "user": user.map(JSONValue.string) ?? .null,
            "autostart": autostart.map(JSONValue.bool) ?? .null,
            "notify": .bool(notify),
            "rule": rule.map(JSONValue.string) ?? .null,
        ]
        if let reason { object["reason"] = .string(reason.rawValue) }
        if let targetsForAsk {
            object["targets_for_ask"] = .array(targetsForAsk.map(JSONValue.string))
            object["default_target"] = defaultTarget.map(JSONValue.string) ?? .null
        }
        if let service { object["service"] = .string(service) }
        if let policySource { object["policy_source"] = .string(policySource) }
        return .object(object)
    }
}
