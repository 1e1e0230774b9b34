public import SluiceWire

/// A service's configuration: qrexec's rpc-config keys, and Sluice's own limits.
///
/// The file format is qrexec's TOML subset, so existing `rpc-config` files work unchanged: `key = value` lines,
/// `#` comments (also after a value), keys `[A-Za-z][A-Za-z0-9._-]*`, values `true`/`false`, decimal integers without
/// leading zeros, and single-quoted strings without escapes. Everything else is an error naming `file:line`:
/// double-quoted or triple-quoted strings, `[sections]`, leading whitespace, a missing `=`, NUL bytes, duplicate
/// keys, wrong value types, and (unlike qrexec, which logs and ignores them) unknown keys.
public struct ServiceConfiguration: Sendable, Hashable {
    /// `wait-for-session`: qrexec waits for the GUI session; Sluice has none to wait for and records the flag only.
    public var waitForSession = false
    /// `force-user`: run as this user whatever the policy's `user=`.
    public var forceUser: String?
    /// `skip-service-descriptor`: socket services get no `SERVICE+ARG SOURCE\0` header.
    public var skipServiceDescriptor = false
    /// `exit-on-service-eof`: a socket call ends when the service shuts its output.
    public var exitOnServiceEOF = false
    /// `exit-on-client-eof`: a socket call ends when the caller closes its input.
    public var exitOnClientEOF = false
    /// `timeout` (Sluice): seconds before the handler is stopped (SIGTERM, a grace period, SIGKILL).
    public var timeoutSeconds: Int?
    /// `max-concurrent` (Sluice): calls of this service running at once; more are refused (`service-busy`).
    public var maxConcurrent: Int?
    /// `max-output-bytes` (Sluice): stdout plus stderr; more is cut (`output-limit-exceeded`).
    public var maxOutputBytes: Int?

    public init() {}

    /// The file's name, for errors.
    public var source: String?

    /// Parses a configuration file's text.
    public init(parsing text: String, file: String) throws(SluiceError) {
        source = file
        var seen: Set<String> = []
        var lineNumber = 0
        func fail(_ message: String) -> SluiceError {
            SluiceError(.serviceConfigInvalid, "\(file):\(lineNumber): \(message)")
        }
        guard !text.utf8.contains(0) else {
            throw SluiceError(.serviceConfigInvalid, "\(file): the file holds a NUL byte")
        }
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            if line.first == "#" { continue }
            guard line.first != " " && line.first != "\t" else { throw fail("leading whitespace is not allowed") }
            guard line.first != "[" else { throw fail("sections ([...]) are not allowed") }
            guard let equals = line.firstIndex(of: "=") else { throw fail("expected key = value") }
            let key = String(line[..<equals]).trimmingSpaces
            guard Self.isKey(key) else { throw fail("invalid key \(key.debugDescription)") }
            guard seen.insert(key).inserted else { throw fail("key \(key) given twice") }
            let value = try Self.value(String(line[line.index(after: equals)...]), fail)
            switch key {
            case "wait-for-session":
                switch value {
                case .bool(let flag): waitForSession = flag
                case .integer(let number) where number == 0 || number == 1: waitForSession = number == 1
                default: throw fail("wait-for-session must be true, false, 0 or 1")
                }
            case "force-user":
                guard case .string(let user) = value else { throw fail("force-user must be a 'quoted string'") }
                do {
                    _ = try UserName(user)
                } catch {
                    throw fail("force-user: \(error.message)")
                }
                forceUser = user
            case "skip-service-descriptor": skipServiceDescriptor = try Self.bool(value, key, fail)
            case "exit-on-service-eof": exitOnServiceEOF = try Self.bool(value, key, fail)
            case "exit-on-client-eof": exitOnClientEOF = try Self.bool(value, key, fail)
            case "timeout": timeoutSeconds = try Self.positive(value, key, fail)
            case "max-concurrent": maxConcurrent = try Self.positive(value, key, fail)
            case "max-output-bytes": maxOutputBytes = try Self.positive(value, key, fail)
            default:
                throw fail(
                    "unknown key \(key); expected wait-for-session, force-user, skip-service-descriptor, exit-on-service-eof, exit-on-client-eof, timeout, max-concurrent or max-output-bytes"
                )
            }
        }
        if forceUser != nil && (skipServiceDescriptor || exitOnServiceEOF || exitOnClientEOF) {
            lineNumber = 0
            throw SluiceError(
                .serviceConfigInvalid,
                "\(file): force-user cannot be combined with skip-service-descriptor, exit-on-service-eof or exit-on-client-eof"
            )
        }
    }

    enum Value {
        case bool(Bool)
        case integer(Int)
        case string(String)
    }

    static func isKey(_ key: String) -> Bool {
        guard let first = key.utf8.first, (first >= 0x41 && first <= 0x5A) || (first >= 0x61 && first <= 0x7A) else {
            return false
        }
        return key.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2E
                || byte == 0x5F || byte == 0x2D
        }
    }

    static func value(_ raw: String, _ fail: (String) -> SluiceError) throws(SluiceError) -> Value {
        var text = raw.trimmingSpaces
        if text.hasPrefix("'") {
            guard !text.hasPrefix("'''") else { throw fail("multi-line strings are not allowed") }
            guard let close = text.dropFirst().firstIndex(of: "'") else { throw fail("unterminated string") }
            let content = String(text[text.index(after: text.startIndex)..<close])
            let rest = String(text[text.index(after: close)...]).trimmingSpaces
            guard rest.isEmpty || rest.hasPrefix("#") else { throw fail("unexpected text after the string") }
            return .string(content)
        }
        guard !text.hasPrefix("\"") else { throw fail("double-quoted strings are not allowed; use 'single quotes'") }
        if let hash = text.firstIndex(of: "#") { text = String(text[..<hash]).trimmingSpaces }
        switch text {
        case "true": return .bool(true)
        case "false": return .bool(false)
        default:
            guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                text == "0" || !text.hasPrefix("0"),
                let number = Int(text)
            else {
                throw fail("invalid value \(text.debugDescription): expected true, false, an integer or a 'string'")
            }
            return .integer(number)
        }
    }

    static func bool(_ value: Value, _ key: String, _ fail: (String) -> SluiceError) throws(SluiceError) -> Bool {
        guard case .bool(let flag) = value else { throw fail("\(key) must be true or false") }
        return flag
    }

    static func positive(_ value: Value, _ key: String, _ fail: (String) -> SluiceError) throws(SluiceError) -> Int {
        guard case .integer(let number) = value, number > 0 else { throw fail("\(key) must be a positive integer") }
        return number
    }
}

extension String {
    var trimmingSpaces: String {
        let bytes = utf8
        guard let first = bytes.firstIndex(where: { $0 != 0x20 && $0 != 0x09 }) else { return "" }
        let last = bytes.lastIndex(where: { $0 != 0x20 && $0 != 0x09 })!
        return String(self[first...last])
    }
}
