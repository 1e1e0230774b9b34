public import Logging
public import SluiceCalls
import SluiceLocks
import SluicePolicy
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// One JSON line per call, appended with a single `write` so lines never interleave or tear.
///
/// When the disk is full (or any write fails), the daemon keeps serving: the record is lost, the first loss is
/// logged as an error, and a write that got only part of a line out is cut back off the file, so no torn line is
/// left. Once writing works again, an `audit-gap` line says how many records were lost, and the log says so too.
public final class AuditLog: Sendable {
    private let descriptor: Int32
    private let logger: Logger
    /// Records lost since the last successful write.
    private let lost = LockedValue(0)

    public init(path: String, logger: Logger) throws(SluiceError) {
        self.logger = logger
        descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else {
            throw SluiceError(
                .systemCallFailed, "cannot open the audit log \(path): \(String(cString: strerror(errno)))")
        }
    }

    deinit { close(descriptor) }

    /// Writes one line about a call: what it records (`event`) and the record's fields (docs/calls.md, "The audit log").
    public func write(_ record: CallRecord, event: CallRecord.Event) {
        var object: [String: JSONValue] = [
            "time": .string(Self.timestamp()), "event": .string(event.rawValue), "call": .int(Int(record.call)),
            "source": .string(record.source),
            "requested_target": .string(record.requestedTarget), "target": record.target.map(JSONValue.string) ?? .null,
            "service": .string(record.service), "argument": .string(record.argument),
            "decision": .string(record.decision),
            "rule": record.rule.map(JSONValue.string) ?? .null,
        ]
        if let reason = record.reason { object["reason"] = .string(reason) }
        if let code = record.exitCode { object["exit_code"] = .int(code) }
        if let bytes = record.bytesIn { object["bytes_in"] = .int(Int(clamping: bytes)) }
        if let bytes = record.bytesOut { object["bytes_out"] = .int(Int(clamping: bytes)) }
        if let duration = record.duration { object["duration_ms"] = .int(Int(duration.wholeMilliseconds)) }
        append(Array((JSONValue.object(object).serialized + "\n").utf8))
    }

    /// Appends one line whole, or nothing; one writer at a time, so the length before the write is the place to cut
    /// a partial line back to.
    private func append(_ line: [UInt8]) {
        lost.withLock { lost in
            if lost > 0 {
                let gap: [String: JSONValue] = [
                    "time": .string(Self.timestamp()), "type": .string("audit-gap"), "lost": .int(lost),
                ]
                guard writeWhole(Array((JSONValue.object(gap).serialized + "\n").utf8)) == nil else {
                    lost += 1
                    return
                }
                logger.notice("the audit log is writable again; \(lost) records were lost (an audit-gap line says so)")
                lost = 0
            }
            if let error = writeWhole(line) {
                if lost == 0 {
                    logger.error("cannot write the audit log (\(error)); records are lost until it can be written")
                }
                lost += 1
            }
        }
    }

    /// Writes `line` with one `write`; on failure or a short write, truncates the file back and returns why. The
    /// file's size is only asked for after a short write (one writer, O_APPEND: the part written is at the end).
    private func writeWhole(_ line: [UInt8]) -> String? {
        let written = line.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        if written == line.count { return nil }
        let reason = written < 0 ? String(cString: strerror(errno)) : "only \(written) of \(line.count) bytes written"
        var after = stat()
        if written > 0 && fstat(descriptor, &after) == 0 { _ = ftruncate(descriptor, after.st_size - off_t(written)) }
        return reason
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
