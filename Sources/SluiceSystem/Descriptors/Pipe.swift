internal import CSluiceLinux
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// A pipe: bytes written to `writeEnd` come out of `readEnd`. Both ends are close-on-exec.
public struct Pipe: Sendable, Hashable {
    public let readEnd: FileDescriptor
    public let writeEnd: FileDescriptor

    public init() throws(SluiceError) {
        var fds: [Int32] = [-1, -1]
        guard sluice_pipe(&fds, 0) == 0 else { throw SystemCall.error("pipe2", errno) }
        readEnd = FileDescriptor(rawValue: fds[0])
        writeEnd = FileDescriptor(rawValue: fds[1])
    }
}

extension FileDescriptor {
    /// Reads until end of file.
    public func readToEnd(chunk: Int = 65_536) throws(SluiceError) -> [UInt8] {
        var all: [UInt8] = []
        while true {
            let bytes = try read(upTo: chunk)
            if bytes.isEmpty { return all }
            all += bytes
        }
    }
}
