import SluicePolicy
public import SluiceWire
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One JSON line per call, appended with a single `write` so lines never interleave or tear.
public final class AuditLog: Sendable {
    public struct Record: Sendable {
        public var call: UInt64
        public var source: String
        public var requestedTarget: String
        public var target: String?
        public var service: String
        public var argument: String
        public var decision: String
        public var rule: String?
        public var reason: String?
        public var exitCode: Int?
        public var bytesIn: UInt64?
        public var bytesOut: UInt64?
        public var durationMilliseconds: Double?
    }

    private let descriptor: Int32

    public init(path: String) throws(SluiceError) {
        descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else {
            throw SluiceError(
                .systemCallFailed, "cannot open the audit log \(path): \(String(cString: strerror(errno)))")
        }
    }

    deinit { close(descriptor) }

    public func write(_ record: Record) {
        var object: [String: JSONValue] = [
            "time": .string(Self.timestamp()), "call": .int(Int(record.call)), "source": .string(record.source),
            "requested_target": .string(record.requestedTarget), "target": record.target.map(JSONValue.string) ?? .null,
            "service": .string(record.service), "argument": .string(record.argument),
            "decision": .string(record.decision),
            "rule": record.rule.map(JSONValue.string) ?? .null,
        ]
        if let reason = record.reason { object["reason"] = .string(reason) }
        if let code = record.exitCode { object["exit_code"] = .int(code) }
        if let bytes = record.bytesIn { object["bytes_in"] = .int(Int(bytes)) }
        if let bytes = record.bytesOut { object["bytes_out"] = .int(Int(bytes)) }
        if let duration = record.durationMilliseconds { object["duration_ms"] = .int(Int(duration.rounded())) }
        let line = Array((JSONValue.object(object).serialized + "\n").utf8)
        _ = line.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let millis = Int(now.tv_nsec / 1_000_000)
        let fraction = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return
            "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(fraction)Z"
    }
}
