public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// An owned-by-convention POSIX file descriptor. Like swift-system's type, it is a plain value: whoever holds
/// it closes it exactly once with `close()`.
public struct FileDescriptor: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let standardInput = FileDescriptor(rawValue: 0)
    public static let standardOutput = FileDescriptor(rawValue: 1)
    public static let standardError = FileDescriptor(rawValue: 2)

    public var description: String { "fd \(rawValue)" }

    public func close() {
        _ = Glibc.close(rawValue)
    }

    /// Reads up to `count` bytes; an empty array means end of file. Retries on EINTR.
    public func read(upTo count: Int) throws(SluiceError) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        let n = result.withUnsafeMutableBytes { buffer in
            SystemCall.retrying { Glibc.read(rawValue, buffer.baseAddress, count) }
        }
        guard n >= 0 else { throw SystemCall.error("read", errno) }
        result.removeSubrange(n...)
        return result
    }

    /// Writes all of `bytes`, looping over short writes. Retries on EINTR.
    public func writeAll(_ bytes: some Collection<UInt8>) throws(SluiceError) {
        let array = Array(bytes)
        var offset = 0
        while offset < array.count {
            let n = array.withUnsafeBytes { buffer in
                SystemCall.retrying { Glibc.write(rawValue, buffer.baseAddress! + offset, buffer.count - offset) }
            }
            guard n > 0 else { throw SystemCall.error("write", errno) }
            offset += n
        }
    }
}

/// errno handling shared by the wrappers.
enum SystemCall {
    static func retrying(_ body: () -> Int) -> Int {
        while true {
            let result = body()
            if result >= 0 || errno != EINTR { return result }
        }
    }

    static func error(_ call: String, _ code: Int32) -> SluiceError {
        SluiceError(.systemCallFailed, "\(call) failed: \(String(cString: strerror(code))) (errno \(code))")
    }
}
