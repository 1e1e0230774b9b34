internal import CSluiceLinux
public import SluiceSystem
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// Where the caller's stdin comes from (the data channel, a descriptor, memory).
public protocol HandlerInput: AnyObject {
    /// Readable when more input may be there; nil if `read` never has to wait (memory).
    var readiness: FileDescriptor? { get }
    /// Reads what is there: a count, 0 at the end of input, or nil when nothing is there yet.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(SluiceError) -> Int?
}

/// Where the handler's stdout and stderr go.
public protocol HandlerOutput: AnyObject {
    func write(_ stream: StreamID, _ bytes: UnsafeRawBufferPointer) throws(SluiceError)
    func finish(_ stream: StreamID) throws(SluiceError)
}

/// How a call ended on the service side, and what it moved.
public struct HandlerResult: Sendable, Hashable {
    public var status: ExitStatus
    /// Bytes of the caller's stdin delivered to the handler.
    public var bytesIn: UInt64
    /// Bytes of stdout and stderr delivered to the caller.
    public var bytesOut: UInt64
    /// Set for `output-limit-exceeded`, `handler-timed-out` and `cancelled`.
    public var error: SluiceError?
}

/// Moves bytes between a caller and a running handler on one thread, with `poll`, and ends the call as qrexec
/// does: when the handler has exited and closed stdout and stderr (a socket service: when it closes the
/// connection). It enforces the call's limits: the deadline (SIGTERM to the process group, a grace period, then
/// SIGKILL), `max-output-bytes` (the output is cut, then the handler is stopped) and cancellation.
public final class HandlerPump: @unchecked Sendable {
    /// How long a handler has between SIGTERM and SIGKILL.
    public static let defaultGraceMilliseconds = 2_000
    /// Bytes moved per read.
    public static let chunkBytes = 256 * 1_024

    private let cancelSignal: EventNotifier

    public init() throws(SluiceError) {
        cancelSignal = try EventNotifier.create()
    }

    deinit { cancelSignal.descriptor.close() }

    /// Ends the call from another thread: the handler is stopped and the result says `cancelled`.
    public func cancel() { cancelSignal.signal() }

    public func run(
        _ handler: RunningHandler, input: (any HandlerInput)?, output: any HandlerOutput,
        graceMilliseconds: Int = defaultGraceMilliseconds
    ) -> HandlerResult {
        var buffer = [UInt8](repeating: 0, count: Self.chunkBytes)
        var pending: [UInt8] = []
        var pendingOffset = 0
        var inputDone = input == nil
        var inputOpenAfterEnd = true
        // An input that just gave bytes may hold more that arrived with them (a data frame and the end of stdin in
        // one wake-up): its readiness signal was consumed, so ask it again before sleeping in poll.
        var inputMayHaveMore = false
        var bytesIn: UInt64 = 0
        var bytesOut: UInt64 = 0
        let limit = handler.configuration.maxOutputBytes.map(UInt64.init)
        var ending: (ExitReason, SluiceError)?
        if input == nil { handler.closeInput() }

        func stop(_ reason: ExitReason, _ error: SluiceError) {
            let killed = handler.stop(graceMilliseconds: graceMilliseconds)
            if reason == .timeoutTerminated && killed {
                ending = (.timeoutKilled, error)
            } else {
                ending = (reason, error)
            }
        }

        /// Forwards one read of a handler stream; returns false at its end.
        func forward(_ stream: StreamID, _ descriptor: FileDescriptor) -> Bool {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(descriptor.rawValue, $0.baseAddress, $0.count) }
            if n < 0 { return errno == EAGAIN || errno == EINTR }
            if n == 0 { return false }
            var count = n
            if let limit, bytesOut + UInt64(n) > limit {
                count = Int(limit - bytesOut)
            }
            let written = buffer.withUnsafeBytes { raw in
                Result { () throws(SluiceError) in
                    try output.write(stream, UnsafeRawBufferPointer(rebasing: raw[..<count]))
                }
            }
            if case .failure(let error) = written {
                stop(.cancelled, error)
                return false
            }
            bytesOut += UInt64(count)
            if count < n {
                stop(.outputLimit, SluiceError(.outputLimitExceeded, "the handler wrote more than \(limit ?? 0) bytes"))
                return false
            }
            return true
        }

        while ending == nil {
            let outputOpen = handler.output != nil
            let errorOpen = handler.errorOutput != nil
            // Read once per round: `hasExited` reaps, so asking twice could see the exit only the second time and
            // then neither stop nor watch the exit descriptor (a poll with no timeout that never returns).
            let exited = handler.hasExited
            if !outputOpen && !errorOpen && exited { break }

            // Feed the handler's stdin first: memory input never waits.
            if !inputDone, let input, let target = handler.input {
                if pendingOffset == pending.count {
                    pending.removeAll(keepingCapacity: true)
                    pendingOffset = 0
                    let result = buffer.withUnsafeMutableBytes { raw in
                        Result { () throws(SluiceError) in try input.read(into: raw) }
                    }
                    var ended = false
                    switch result {
                    case .failure(let error):
                        // A broken input (a malformed frame from the caller) is not the end of stdin: the handler
                        // must not finish as if it had everything. Stop it; the call ends as cancelled.
                        stop(.cancelled, error)
                    case .success(let count?) where count == 0: ended = true
                    case .success(let count?):
                        pending.append(contentsOf: buffer[..<count])
                        inputMayHaveMore = true
                    case .success(nil): inputMayHaveMore = false
                    }
                    if ended {
                        inputDone = true
                        handler.closeInput()
                        if handler.configuration.exitOnClientEOF, case .socket = handler.kind { handler.closeOutput() }
                    }
                }
                if pendingOffset < pending.count {
                    let n = pending.withUnsafeBytes {
                        Glibc.write(target.rawValue, $0.baseAddress! + pendingOffset, pending.count - pendingOffset)
                    }
                    if n > 0 {
                        pendingOffset += n
                        bytesIn += UInt64(n)
                    } else if n < 0 && errno != EAGAIN && errno != EINTR {
                        // The handler closed its stdin: the rest of the input is dropped, as in qrexec.
                        inputDone = true
                        handler.closeInput()
                        pending.removeAll()
                        pendingOffset = 0
                    }
                }
            }

            var descriptors: [pollfd] = []
            var roles: [Int] = []
            func watch(_ descriptor: FileDescriptor?, _ events: Int32, _ role: Int) {
                guard let descriptor else { return }
                descriptors.append(pollfd(fd: descriptor.rawValue, events: Int16(events), revents: 0))
                roles.append(role)
            }
            watch(handler.output, POLLIN, 1)
            watch(handler.errorOutput, POLLIN, 2)
            if !exited { watch(handler.exitDescriptor, POLLIN, 3) }
            watch(cancelSignal.descriptor, POLLIN, 4)
            let memoryInputReady =
                !inputDone && (input?.readiness == nil || inputMayHaveMore) && pendingOffset == pending.count
            if !inputDone {
                if pendingOffset < pending.count {
                    watch(handler.input, POLLOUT, 5)
                } else if let readiness = input?.readiness {
                    watch(readiness, POLLIN, 6)
                }
            } else if let readiness = input?.readiness, inputOpenAfterEnd {
                // After the end of stdin the caller's channel still carries control (cancel): keep listening.
                watch(readiness, POLLIN, 7)
            }
            // Without a pidfd (pidfd_open failed) the exit is only seen by polling waitpid: wake up every 50 ms.
            var timeout: Int32 = memoryInputReady ? 0 : (handler.exitDescriptor == nil && !exited ? 50 : -1)
            if let deadline = handler.deadline {
                let now = MonotonicClock.nanoseconds
                if now >= deadline {
                    stop(.timeoutTerminated, SluiceError(.handlerTimedOut, "the call's deadline passed"))
                    break
                }
                let remaining = Int32(clamping: (deadline - now) / 1_000_000 + 1)
                timeout = timeout < 0 ? remaining : min(timeout, remaining)
            }
            let ready = descriptors.withUnsafeMutableBufferPointer {
                Glibc.poll($0.baseAddress, nfds_t($0.count), timeout)
            }
            if ready < 0 && errno != EINTR { break }
            for (index, descriptor) in descriptors.enumerated() where descriptor.revents != 0 {
                switch roles[index] {
                case 1:
                    if let stream = handler.output, !forward(.stdout, stream) {
                        handler.closeOutput()
                        try? output.finish(.stdout)
                    }
                case 2:
                    if let stream = handler.errorOutput, !forward(.stderr, stream) {
                        handler.closeErrorOutput()
                        try? output.finish(.stderr)
                    }
                case 4:
                    cancelSignal.drain()
                    stop(.cancelled, SluiceError(.cancelled, "the call was cancelled"))
                case 7:
                    // Anything but control after the end of stdin is dropped; an error or the end stops listening.
                    let result = buffer.withUnsafeMutableBytes { raw in
                        Result { () throws(SluiceError) in try input?.read(into: raw) }
                    }
                    if case .success(let count?) = result, count == 0 { inputOpenAfterEnd = false }
                    if case .failure = result { inputOpenAfterEnd = false }
                default:
                    break
                }
                if ending != nil { break }
            }
        }
        if handler.output != nil { try? output.finish(.stdout) }
        if handler.errorOutput != nil { try? output.finish(.stderr) }
        if case .socket = handler.kind, handler.errorOutput == nil, ending == nil { try? output.finish(.stderr) }
        handler.closeInput()
        handler.closeOutput()
        handler.closeErrorOutput()
        let termination = handler.waitForExit()
        let status: ExitStatus
        switch ending {
        case (.outputLimit, _)?, (.cancelled, _)?:
            status = ExitStatus(
                code: ending!.0 == .outputLimit ? 125 : UInt8(clamping: termination.shellStatus), reason: ending!.0)
        case (let reason, _)?:
            status = ExitStatus(code: UInt8(clamping: termination.shellStatus), reason: reason)
        case nil:
            switch termination {
            case .exited(let code): status = ExitStatus(code: UInt8(truncatingIfNeeded: code), reason: .exited)
            case .signaled: status = ExitStatus(code: UInt8(clamping: termination.shellStatus), reason: .signaled)
            }
        }
        return HandlerResult(status: status, bytesIn: bytesIn, bytesOut: bytesOut, error: ending?.1)
    }
}

/// Output collected in memory (tests, typed calls).
public final class CollectedOutput: HandlerOutput {
    public private(set) var standardOutput: [UInt8] = []
    public private(set) var standardError: [UInt8] = []
    public private(set) var finished: Set<StreamID> = []
    public init() {}
    public func write(_ stream: StreamID, _ bytes: UnsafeRawBufferPointer) throws(SluiceError) {
        if stream == .stderr { standardError += bytes } else { standardOutput += bytes }
    }
    public func finish(_ stream: StreamID) throws(SluiceError) { finished.insert(stream) }
}

/// Input from memory.
public final class MemoryInput: HandlerInput {
    private let bytes: [UInt8]
    private var offset = 0
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var readiness: FileDescriptor? { nil }
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(SluiceError) -> Int? {
        let count = min(buffer.count, bytes.count - offset)
        guard count > 0 else { return 0 }
        bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: count) }
        offset += count
        return count
    }
}
