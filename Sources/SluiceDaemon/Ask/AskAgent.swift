import SluiceLocks
import SluicePolicy
public import SluiceSystem
import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// Who answers an `ask` decision.
public protocol AskAgent: Sendable {
    /// The chosen target (one of `targets`), or nil to deny.
    func ask(source: String, service: String, argument: String, targets: [String], defaultTarget: String?) -> String?
}

/// Denies every ask: the default without a terminal.
public struct DenyingAskAgent: AskAgent {
    public init() {}
    public func ask(source: String, service: String, argument: String, targets: [String], defaultTarget: String?)
        -> String?
    { nil }
}

/// Runs a command for each question: it gets the question as one JSON object on stdin
/// (`{"source","service","argument","targets","default_target"}`, the argument with its `+`, as qrexec's
/// `policy.Ask`) and answers on stdout with `allow:TARGET` or `deny`. Anything else, a target not offered, or no
/// answer within `timeoutMilliseconds` denies.
public struct CommandAskAgent: AskAgent {
    public var command: [String]
    public var timeoutMilliseconds: Int32

    public init(command: [String], timeoutMilliseconds: Int32 = 60_000) {
        self.command = command
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    public func ask(source: String, service: String, argument: String, targets: [String], defaultTarget: String?)
        -> String?
    {
        guard let path = command.first else { return nil }
        let question = JSONValue.object([
            "source": .string(source), "service": .string(service), "argument": .string("+" + argument),
            "targets": .array(targets.map(JSONValue.string)), "default_target": .string(defaultTarget ?? ""),
        ]).serialized
        do {
            let input = try Pipe()
            let output = try Pipe()
            let child = try ChildProcess.spawn(
                path: path, arguments: command, environment: ["PATH=/usr/local/bin:/usr/bin:/bin"],
                descriptors: [(input.readEnd, 0), (output.writeEnd, 1), (.standardError, 2)], newProcessGroup: true)
            input.readEnd.close()
            output.writeEnd.close()
            defer {
                output.readEnd.close()
                child.signalGroup(SIGKILL)
                _ = try? child.wait()
            }
            try input.writeEnd.writeAll(Array(question.utf8))
            input.writeEnd.close()
            guard try Readiness.wait(output.readEnd, timeoutMilliseconds: timeoutMilliseconds).first else { return nil }
            let reply = String(decoding: try output.readEnd.read(upTo: 4_096), as: UTF8.self)
            let answer = reply.split(separator: "\n").first.map(String.init) ?? ""
            guard answer.hasPrefix("allow:") else { return nil }
            let target = String(answer.dropFirst("allow:".count))
            return targets.contains(target) ? target : nil
        } catch {
            return nil
        }
    }
}

/// Asks on a terminal: `sluiced`'s default when its stdin is a TTY and no `--ask-command` is given. One question at a
/// time; the answer is a target's number or name from the list, and anything else (or `n`, or end of input) denies.
public final class TerminalAskAgent: AskAgent {
    private let input: FileDescriptor
    private let output: FileDescriptor
    private let lock = Lock()

    public init(input: FileDescriptor, output: FileDescriptor) {
        self.input = input
        self.output = output
    }

    public func ask(source: String, service: String, argument: String, targets: [String], defaultTarget: String?)
        -> String?
    {
        lock.withLock {
            var text = "\n\(source) asks to call \(service)+\(argument). Allow it, and to which domain?\n"
            for (index, target) in targets.enumerated() {
                text += "  \(index + 1)) \(target)\(target == defaultTarget ? " (default)" : "")\n"
            }
            text += "Number or name; Enter for the default; n to deny: "
            guard (try? output.writeAll(Array(text.utf8))) != nil else { return nil }
            var line: [UInt8] = []
            while line.last != UInt8(ascii: "\n"), line.count < 256 {
                guard let bytes = try? input.read(upTo: 1), !bytes.isEmpty else { return nil }
                line += bytes
            }
            let answer = String(decoding: line, as: UTF8.self).trimmingWhitespace
            let chosen: String?
            if answer.isEmpty {
                chosen = defaultTarget
            } else if let number = Int(answer), number >= 1, number <= targets.count {
                chosen = targets[number - 1]
            } else {
                chosen = answer
            }
            guard let chosen, targets.contains(chosen) else {
                try? output.writeAll(Array("denied\n".utf8))
                return nil
            }
            try? output.writeAll(Array("allowed: \(chosen)\n".utf8))
            return chosen
        }
    }
}

extension String {
    fileprivate var trimmingWhitespace: String {
        let bytes = Array(utf8)
        let isSpace: (UInt8) -> Bool = { $0 == 32 || $0 == 9 || $0 == 10 || $0 == 13 }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}
