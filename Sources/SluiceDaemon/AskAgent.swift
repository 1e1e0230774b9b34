import SluicePolicy
import SluiceSystem
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
