import Foundation
@_exported public import SluiceCaller
import SluiceSystem
public import SluiceWire

/// What a finished call produced.
public struct CallResult: Sendable, Hashable {
    public var standardOutput: [UInt8]
    public var standardError: [UInt8]
    /// The handler's code, 126 refused, 127 unknown service, 125 other failures, 128+n killed by signal n.
    public var exitCode: Int32
}

/// The Swift client library: calls from a long-lived process, without a `sluice-call` per call.
///
/// `run` sends `input` as the handler's stdin and collects its stdout and stderr; Swift task cancellation cancels
/// the call (the handler gets SIGTERM, a grace period, then SIGKILL). `call(_:on:request:as:)` sends one `Encodable`
/// request as JSON and decodes one `Decodable` reply.
public struct SluiceClient: Sendable {
    public var endpoints: CallerSide.Endpoints

    public init(endpoints: CallerSide.Endpoints = .resolve(agent: nil)) {
        self.endpoints = endpoints
    }

    public func run(_ call: ServiceCall, on target: TargetName, input: [UInt8] = []) async throws(SluiceError)
        -> CallResult
    {
        let stdin = try SluiceSystem.Pipe()
        let stdout = try SluiceSystem.Pipe()
        let stderr = try SluiceSystem.Pipe()
        let cancel = try EventNotifier.create()
        let endpoints = endpoints
        let result: CallResult = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<CallResult, Never>) in
                let collected = Collected()
                let group = DispatchGroup()
                for (source, isError) in [(stdout.readEnd, false), (stderr.readEnd, true)] {
                    group.enter()
                    Thread {
                        let bytes = (try? source.readToEnd()) ?? []
                        source.close()
                        collected.set(bytes, isError: isError)
                        group.leave()
                    }.start()
                }
                Thread {
                    try? stdin.writeEnd.writeAll(input)
                    stdin.writeEnd.close()
                }.start()
                Thread {
                    let code = CallerSide.run(
                        call, target: target, endpoints: endpoints, input: stdin.readEnd, output: stdout.writeEnd,
                        errorOutput: stderr.writeEnd, cancel: cancel.descriptor)
                    stdin.readEnd.close()
                    stdout.writeEnd.close()
                    stderr.writeEnd.close()
                    group.wait()
                    cancel.descriptor.close()
                    continuation.resume(returning: collected.result(code))
                }.start()
            }
        } onCancel: {
            cancel.signal()
        }
        return result
    }

    /// Sends `request` as JSON to `service` on `target` and decodes the reply from the handler's stdout.
    /// Throws `refused-by-policy` (126), `service-not-found` (127) or `service-unusable` with the handler's stderr.
    public func call<Request: Encodable, Reply: Decodable>(
        _ service: String, on target: String, request: Request, as reply: Reply.Type = Reply.self
    ) async throws -> Reply {
        let input = try JSONEncoder().encode(request)
        let result = try await run(try ServiceCall(parsing: service), on: try TargetName(target), input: Array(input))
        switch result.exitCode {
        case 0: return try JSONDecoder().decode(Reply.self, from: Data(result.standardOutput))
        case 126: throw SluiceError(.refusedByPolicy, "Request refused")
        case 127: throw SluiceError(.serviceNotFound, "service \(service) not found")
        default:
            throw SluiceError(
                .serviceUnusable,
                "\(service) exited with \(result.exitCode): \(String(decoding: result.standardError.prefix(512), as: UTF8.self))"
            )
        }
    }
}

private final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var output: [UInt8] = []
    private var error: [UInt8] = []

    func set(_ bytes: [UInt8], isError: Bool) {
        lock.withLock {
            if isError { error = bytes } else { output = bytes }
        }
    }

    func result(_ code: Int32) -> CallResult {
        lock.withLock { CallResult(standardOutput: output, standardError: error, exitCode: code) }
    }
}
