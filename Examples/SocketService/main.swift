// sluice-example-socket-echo SOCKET: a long-running service behind a UNIX socket, the sub-millisecond path (no
// process per call). Put the socket in a service directory under the service's name, e.g.
//   sluice-example-socket-echo /etc/sluice/services/example.SocketEcho &
// For each call the agent connects, sends the service descriptor ("SERVICE+ARG SOURCE" and a NUL byte), then the
// caller's stdin; what this daemon writes back is the caller's stdout. Closing the connection ends the call (exit 0).
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

guard CommandLine.arguments.count == 2 else {
    FileHandle.standardError.write(Data("usage: sluice-example-socket-echo SOCKET-PATH\n".utf8))
    exit(2)
}
signal(SIGPIPE, SIG_IGN)
let path = CommandLine.arguments[1]
unlink(path)
let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
var address = sockaddr_un()
address.sun_family = sa_family_t(AF_UNIX)
guard path.utf8.count < MemoryLayout.size(ofValue: address.sun_path) else { exit(2) }
withUnsafeMutableBytes(of: &address.sun_path) { raw in
    for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
}
let bound = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
    }
}
guard bound == 0, listen(listener, 64) == 0 else {
    FileHandle.standardError.write(Data("cannot listen on \(path): \(String(cString: strerror(errno)))\n".utf8))
    exit(1)
}
chmod(path, 0o600)
FileHandle.standardOutput.write(Data("listening on \(path)\n".utf8))

/// One call: the descriptor up to its NUL, then an echo of everything until the agent closes its side.
@Sendable func serve(_ connection: Int32) {
    defer { close(connection) }
    var buffer = [UInt8](repeating: 0, count: 65_536)
    var descriptor: [UInt8] = []
    var pending: ArraySlice<UInt8> = []
    while true {
        let count = read(connection, &buffer, buffer.count)
        if count <= 0 { return }
        if let nul = buffer[..<count].firstIndex(of: 0) {
            descriptor += buffer[..<nul]
            pending = buffer[(nul + 1)..<count]
            break
        }
        descriptor += buffer[..<count]
        if descriptor.count > 65_536 { return }
    }
    var bytes = Array(pending)
    while true {
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(connection, $0.baseAddress! + written, bytes.count - written) }
            if n <= 0 { return }
            written += n
        }
        let count = read(connection, &buffer, buffer.count)
        if count <= 0 { return }
        bytes = Array(buffer[..<count])
    }
}

while true {
    let connection = accept(listener, nil, nil)
    if connection < 0 { continue }
    Thread { serve(connection) }.start()
}
