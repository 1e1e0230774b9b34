// sluice-example-echo, the smallest Swift service: stdin back on stdout, and a line on stderr naming the caller.
// A service is any executable: link or copy it into a service directory under the service's name.
#if canImport(Glibc)
    import Glibc
#endif

let caller = getenv("QREXEC_REMOTE_DOMAIN").map { String(cString: $0) } ?? "?"
let greeting = Array("echo for \(caller)\n".utf8)
_ = greeting.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
var buffer = [UInt8](repeating: 0, count: 65_536)
while true {
    let count = read(0, &buffer, buffer.count)
    if count <= 0 { break }
    var written = 0
    while written < count {
        let n = buffer.withUnsafeBytes { write(1, $0.baseAddress! + written, count - written) }
        if n <= 0 { exit(1) }
        written += n
    }
}
