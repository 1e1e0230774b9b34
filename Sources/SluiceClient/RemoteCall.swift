import SluiceCaller
import SluiceLocks
import SluiceSystem
import SluiceWire

/// A call in progress: its stdin, stdout and stderr as streams, and its exit status when it ends.
///
/// ```swift
/// let call = try await client.call(target: "vault", service: "my.Svc", argument: "x")
/// try await call.standardInput.write(Array("hello".utf8))
/// call.standardInput.finish()
/// call.standardError.discard()
/// for await chunk in call.standardOutput { ... }
/// let status = await call.exitStatus   // 0, the handler's code, 125, 128+n
/// ```
public final class RemoteCall: Sendable {
    public let standardInput: StandardInputWriter
    public let standardOutput: ByteStream
    public let standardError: ByteStream
    private let cancelNotifier: EventNotifier
    private let completion = LockedValue<Completion>(.running([]))

    enum Completion {
        case running([CheckedContinuation<Int32, Never>])
        case finished(Int32)
    }

    init(input: StandardInputWriter, output: ByteStream, error: ByteStream, cancel: EventNotifier) {
        standardInput = input
        standardOutput = output
        standardError = error
        cancelNotifier = cancel
    }

    deinit { cancelNotifier.descriptor.close() }

    var cancelDescriptor: FileDescriptor { cancelNotifier.descriptor }

    /// The handler's exit code, 125 if the call failed on the way, 128+n if the handler died by signal n. Cancelling
    /// the waiting task cancels the call; the status still comes back.
    public var exitStatus: Int32 {
        get async {
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
                    let finished: Int32? = completion.withLock { completion in
                        switch completion {
                        case .finished(let code): return code
                        case .running(var waiting):
                            waiting.append(continuation)
                            completion = .running(waiting)
                            return nil
                        }
                    }
                    if let finished { continuation.resume(returning: finished) }
                }
            } onCancel: {
                cancel()
            }
        }
    }

    /// Stops the call: a `cancel` frame reaches the target, whose handler gets SIGTERM, a grace period, then SIGKILL.
    public func cancel() { cancelNotifier.signal() }

    func complete(_ code: Int32) {
        standardOutput.finish()
        standardError.finish()
        standardInput.close()
        let waiting = completion.withLock { completion -> [CheckedContinuation<Int32, Never>] in
            defer { completion = .finished(code) }
            if case .running(let waiting) = completion { return waiting }
            return []
        }
        for continuation in waiting { continuation.resume(returning: code) }
    }
}

/// The pump's output: data frames into the two streams.
struct StreamOutput: CallOutput {
    let output: ByteStream
    let error: ByteStream

    func write(_ stream: StreamID, _ bytes: [UInt8]) throws(SluiceError) {
        (stream == .stderr ? error : output).push(bytes)
    }

    func finish() {
        output.finish()
        error.finish()
    }
}
