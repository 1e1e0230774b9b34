/// Parses one rule line, v5 (`SERVICE ARGUMENT SOURCE TARGET ACTION [PARAMS]`) or old-format
/// (`SOURCE TARGET ACTION[,PARAMS]` inside `!include-service`), rejecting everything qrexec's parser rejects.
enum RuleParser {
    /// `[A-Za-z0-9._-]`.
    static func isServiceByte(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == 0x2E || byte == 0x5F || byte == 0x2D
    }

    /// Validates the SERVICE and ARGUMENT columns; returns them with `*` as nil and the argument's `+` removed.
    static func serviceAndArgument(
        _ service: LineFields.Field, _ argument: LineFields.Field, path: String, line: Int
    ) throws(PolicyError) -> (String?, String?) {
        var parsedService: String?
        if service.text != "*" {
            if let bad = service.text.utf8.first(where: { !isServiceByte($0) }) {
                throw PolicyError(
                    path: path, line: line, column: service.column,
                    message:
                        "service \(quoted(service.text)) has an invalid character \(quoted(bad)); expected * or [A-Za-z0-9._-]"
                )
            }
            parsedService = service.text
        }
        var parsedArgument: String?
        if argument.text != "*" {
            guard argument.text.hasPrefix("+") else {
                throw PolicyError(
                    path: path, line: line, column: argument.column,
                    message: "argument \(quoted(argument.text)) does not start with +; expected * or +ARGUMENT")
            }
            if let bad = argument.text.utf8.first(where: { !isServiceByte($0) && $0 != 0x2B }) {
                throw PolicyError(
                    path: path, line: line, column: argument.column,
                    message:
                        "argument \(quoted(argument.text)) has an invalid character \(quoted(bad)); expected [A-Za-z0-9._+-]"
                )
            }
            guard parsedService != nil else {
                throw PolicyError(
                    path: path, line: line, column: argument.column,
                    message: "only * argument allowed for * service")
            }
            parsedArgument = String(argument.text.dropFirst())
        }
        return (parsedService, parsedArgument)
    }

    /// Parses a v5 rule from its fields.
    static func rule(_ fields: [LineFields.Field], path: String, origin: RuleOrigin) throws(PolicyError) -> PolicyRule {
        let line = origin.line ?? 0
        guard fields.count >= 5 else {
            throw PolicyError(
                path: path, line: line, column: fields.first?.column ?? 1,
                message:
                    "wrong number of fields: expected SERVICE ARGUMENT SOURCE TARGET ACTION [PARAMS...], found \(fields.count)"
            )
        }
        let (service, argument) = try serviceAndArgument(fields[0], fields[1], path: path, line: line)
        return try rule(
            service: service, argument: argument, fields: Array(fields[2...]), path: path, origin: origin)
    }

    /// Parses SOURCE TARGET ACTION [PARAMS] for a known service and argument.
    static func rule(
        service: String?, argument: String?, fields: [LineFields.Field], path: String, origin: RuleOrigin
    ) throws(PolicyError) -> PolicyRule {
        let line = origin.line ?? 0
        guard fields.count >= 3 else {
            throw PolicyError(
                path: path, line: line, column: fields.first?.column ?? 1,
                message: "wrong number of fields: expected SOURCE TARGET ACTION [PARAMS...], found \(fields.count)")
        }
        let source = try token(fields[0], .source, path: path, line: line)
        let target = try token(fields[1], .target, path: path, line: line)
        let actionField = fields[2]
        var parameters: [String: (value: String, column: Int)] = [:]
        for field in fields[3...] {
            guard let equals = field.text.firstIndex(of: "=") else {
                throw PolicyError(
                    path: path, line: line, column: field.column,
                    message:
                        "invalid parameter \(quoted(field.text)): expected KEY=VALUE (comments must be on their own line)"
                )
            }
            let key = String(field.text[..<equals])
            let value = String(field.text[field.text.index(after: equals)...])
            guard parameters[key] == nil else {
                throw PolicyError(
                    path: path, line: line, column: field.column, message: "parameter \(quoted(key)) given twice")
            }
            parameters[key] = (value, field.column)
        }
        func allowOnly(_ keys: Set<String>) throws(PolicyError) {
            for (key, value) in parameters.sorted(by: { $0.value.column < $1.value.column }) where !keys.contains(key) {
                throw PolicyError(
                    path: path, line: line, column: value.column,
                    message:
                        "invalid parameter \(quoted(key)) for action \(actionField.text); expected \(keys.sorted().joined(separator: ", "))"
                )
            }
        }
        func flag(_ key: String, default value: Bool) throws(PolicyError) -> Bool {
            guard let entry = parameters[key] else { return value }
            switch entry.value {
            case "yes": return true
            case "no": return false
            default:
                throw PolicyError(
                    path: path, line: line, column: entry.column,
                    message: "\(key)=\(entry.value): \(key) can be only yes or no")
            }
        }
        func redirect(_ key: String) throws(PolicyError) -> PolicyToken? {
            guard let entry = parameters[key] else { return nil }
            return try token(
                LineFields.Field(text: entry.value, column: entry.column + key.utf8.count + 1), .redirect, path: path,
                line: line,
                label: key + "=")
        }
        func user() -> String? {
            guard let value = parameters["user"]?.value, !value.isEmpty else { return nil }
            return value
        }
        let action: PolicyAction
        switch actionField.text {
        case "allow":
            try allowOnly(["target", "user", "notify", "autostart"])
            action = .allow(
                .init(
                    target: try redirect("target"), user: user(), notify: try flag("notify", default: false),
                    autostart: try flag("autostart", default: true)))
        case "deny":
            try allowOnly(["notify"])
            action = .deny(notify: try flag("notify", default: true))
        case "ask":
            try allowOnly(["target", "default_target", "user", "notify", "autostart"])
            action = .ask(
                .init(
                    target: try redirect("target"), defaultTarget: try redirect("default_target"), user: user(),
                    notify: try flag("notify", default: false), autostart: try flag("autostart", default: true)))
        default:
            throw PolicyError(
                path: path, line: line, column: actionField.column,
                message: "invalid action \(quoted(actionField.text)): expected allow, deny or ask")
        }
        if target == .defaultTarget, case .allow(let allow) = action, allow.target == nil {
            throw PolicyError(
                path: path, line: line, column: fields[1].column,
                message: "allow action for @default rule must specify target= option")
        }
        return PolicyRule(
            service: service, argument: argument, source: source, target: target, action: action, origin: origin,
            path: path)
    }

    static func token(
        _ field: LineFields.Field, _ context: PolicyToken.Context, path: String, line: Int, label: String = ""
    ) throws(PolicyError) -> PolicyToken {
        switch PolicyToken.parse(field.text, context: context) {
        case .success(let token): return token
        case .failure(let error):
            throw PolicyError(path: path, line: line, column: field.column, message: label + error.message)
        }
    }

    static func quoted(_ text: String) -> String {
        "'"
            + text.unicodeScalars.map {
                $0.value >= 0x20 && $0.value < 0x7F ? String($0) : "\\u{\(String($0.value, radix: 16))}"
            }
            .joined() + "'"
    }

    static func quoted(_ byte: UInt8) -> String {
        byte >= 0x20 && byte < 0x7F ? "'\(Character(Unicode.Scalar(byte)))'" : "0x\(String(byte, radix: 16))"
    }
}
