import Foundation
@_exported public import SluiceCaller
import SluiceSystem
@_exported public import SluiceWire

/// What a finished call produced.
public struct CallResult: Sendable, Hashable {
    public var standardOutput: [UInt8]
    public var standardError: [UInt8]
    /// The handler's code, 126 refused, 127 unknown service, 125 other failures, 128+n killed by signal n.
    public var exitCode: Int32
}

/// The Swift client library: calls from a long-lived process, without a `sluice-call` per call.
///
/// `call(target:service:argument:)` opens a call and returns its streams; `run` sends `input` as the handler's stdin
/// and collects its stdout and stderr; `call(_:on:request:as:)` sends one `Encodable` request as JSON and decodes one
/// `Decodable` reply. Swift task cancellation cancels the call (the handler gets SIGTERM, a grace period, then
/// SIGKILL). Each call takes one thread, which moves its bytes.
public struct SluiceClient: Sendable {
    public var endpoints: CallerSide.Endpoints

    public init(endpoints: CallerSide.Endpoints = .resolve(agent: nil)) {
        self.endpoints = endpoints
    }

    /// Opens a call of `service+argument` on `target` (a domain name, `@default`, `@dispvm`, ...).
    ///
    /// Throws when no call runs: `refused-by-policy` (what `sluice-call` reports as 126), `too-many-calls`,
    /// `request-too-large`, an invalid name, or `channel-closed` if the agent or the target cannot be reached.
    public func call(target: String, service: String, argument: String = "") async throws(SluiceError) -> RemoteCall {
        let serviceCall = try ServiceCall(parsing: argument.isEmpty ? service : service + "+" + argument)
        return try await open(serviceCall, on: try TargetName(target.isEmpty ? "@default" : target))
    }

    /// Opens `call` on `target`; see `call(target:service:argument:)`.
    public func open(_ call: ServiceCall, on target: TargetName) async throws(SluiceError) -> RemoteCall {
        let remote = try RemoteCall(
            input: StandardInputWriter(), output: ByteStream(), error: ByteStream(), cancel: EventNotifier.create())
        let endpoints = endpoints
        let opened: Result<Void, SluiceError> = await withCheckedContinuation { continuation in
            do throws(SluiceError) {
                try OSThread.start {
                    let connected = Result { () throws(SluiceError) in
                        try CallerSide.connect(call, target: target, endpoints: endpoints)
                    }
                    guard case .success(let connection) = connected else {
                        continuation.resume(returning: connected.map { _ in () })
                        return
                    }
                    continuation.resume(returning: .success(()))
                    let output = StreamOutput(output: remote.standardOutput, error: remote.standardError)
                    let code: Int32
                    do throws(SluiceError) {
                        code = try CallerSide.pump(
                            connection, input: remote.standardInput, output: output, cancel: remote.cancelDescriptor)
                    } catch {
                        remote.standardError.push(Array("sluice: \(error.message)\n".utf8))
                        code = 125
                    }
                    connection.close()
                    remote.complete(code)
                }
            } catch {
                continuation.resume(returning: .failure(error))
            }
        }
        try opened.get()
        return remote
    }

    public func run(_ call: ServiceCall, on target: TargetName, input: [UInt8] = []) async throws(SluiceError)
        -> CallResult
    {
        let remote: RemoteCall
        do {
            remote = try await open(call, on: target)
        } catch {
            // No call ran: report it as sluice-call would.
            let text = error.code == .refusedByPolicy ? error.message : "sluice: \(error.message)"
            return CallResult(
                standardOutput: [], standardError: Array((text + "\n").utf8),
                exitCode: CallerSide.exitStatus(for: error))
        }
        return await withTaskCancellationHandler {
            async let output = remote.standardOutput.collect()
            async let errors = remote.standardError.collect()
            try? await remote.standardInput.write(input)
            remote.standardInput.finish()
            let code = await remote.exitStatus
            return CallResult(standardOutput: await output, standardError: await errors, exitCode: code)
        } onCancel: {
            remote.cancel()
        }
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
