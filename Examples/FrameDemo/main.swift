// frame-demo: two real processes exchange Sluice frames over a SOCK_SEQPACKET socket pair (one datagram per
// frame, as on a vchan). The parent plays the caller's side of a data channel and the child, started with
// posix_spawn, plays the service's side: it upper-cases stdin into stdout and returns an exit status. Then the
// parent turns hostile and the child rejects each bad frame with a typed error. `make demo` runs it until the
// daemon and agent exist.
import SluiceSystem
import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

let peerDescriptor: Int32 = 3
let arguments = CommandLine.arguments

/// Writes straight to fd 1, unbuffered, so the two processes' lines interleave in the order they happen.
func say(_ text: String, terminator: String = "\n") {
    try? FileDescriptor.standardOutput.writeAll(Array((text + terminator).utf8))
}

func hex(_ bytes: [UInt8]) -> String {
    stride(from: 0, to: bytes.count, by: 16).map { start in
        let line = bytes[start..<min(start + 16, bytes.count)]
        let hexPart = line.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: " ")
        let text = String(line.map { $0 >= 0x20 && $0 < 0x7F ? Character(Unicode.Scalar($0)) : "." })
        let offset = String(start, radix: 16)
        return String(repeating: "0", count: 4 - offset.count) + offset + "  "
            + hexPart + String(repeating: " ", count: 48 - hexPart.count) + " " + text
    }.joined(separator: "\n")
}

/// The service side: answers frames until end of file or the first bad frame.
func runService() -> Int32 {
    let socket = DatagramSocket(descriptor: FileDescriptor(rawValue: peerDescriptor))
    let decoder = FrameDecoder(direction: .callerToService)
    let encoder = FrameEncoder(direction: .serviceToCaller)
    var input: [UInt8] = []
    do {
        while let (datagram, _) = try socket.receive(maxBytes: WireLimits.default.maxFrameBytes) {
            let message: Message
            do {
                message = try decoder.decode(datagram: datagram)
            } catch {
                say("  service: rejected a frame: \(error)")
                try socket.send(encoder.encode(.error(ErrorReport(error))))
                return 1
            }
            switch message {
            case .hello(let hello):
                let version = try Hello.current.negotiate(with: hello)
                say("  service: hello, speaking version \(version)")
                try socket.send(encoder.encode(.hello(.current)))
            case .data(let chunk):
                input += chunk.bytes
            case .eof(.stdin):
                let output = input.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }
                try socket.send(encoder.encode(.data(DataChunk(stream: .stdout, bytes: output))))
                try socket.send(encoder.encode(.eof(.stdout)))
                try socket.send(encoder.encode(.eof(.stderr)))
                try socket.send(encoder.encode(.exit(ExitStatus(code: 0, reason: .exited))))
            default:
                say("  service: ignoring \(message.kind.rawValue)")
            }
        }
    } catch {
        say("  service: \(error)")
        return 1
    }
    return 0
}

/// Starts a service-side child on a fresh socket pair.
func startService() throws(SluiceError) -> (DatagramSocket, ChildProcess) {
    let (mine, theirs) = try DatagramSocket.pair()
    let child = try ChildProcess.spawn(
        path: "/proc/self/exe",
        arguments: [arguments[0], "--service"],
        environment: [],
        descriptors: [
            (FileDescriptor.standardOutput, 1), (FileDescriptor.standardError, 2), (theirs.descriptor, peerDescriptor),
        ]
    )
    theirs.descriptor.close()
    return (mine, child)
}

func runCaller() throws(SluiceError) -> Int32 {
    let encoder = FrameEncoder(direction: .callerToService)
    let decoder = FrameDecoder(direction: .serviceToCaller)

    say("== 1. a well-formed exchange between two processes")
    let (socket, child) = try startService()
    let hello = try encoder.encode(.hello(.current))
    say("caller: hello frame, \(hello.count) bytes:\n\(hex(hello))")
    try socket.send(hello)
    let stdin = try encoder.encode(.data(DataChunk(stream: .stdin, bytes: Array("hello from the caller\n".utf8))))
    say("caller: stdin frame, \(stdin.count) bytes:\n\(hex(stdin))")
    try socket.send(stdin)
    try socket.send(encoder.encode(.eof(.stdin)))
    var exitCode: UInt8 = 255
    receiving: while let (datagram, _) = try socket.receive(maxBytes: WireLimits.default.maxFrameBytes) {
        switch try decoder.decode(datagram: datagram) {
        case .hello(let peer): say("caller: the service speaks versions \(peer.minVersion)...\(peer.maxVersion)")
        case .data(let chunk):
            say("caller: \(chunk.stream.rawValue): \(String(decoding: chunk.bytes, as: UTF8.self))", terminator: "")
        case .eof(let stream): say("caller: end of \(stream.rawValue)")
        case .exit(let status):
            say("caller: exit status \(status.code) (\(status.reason.rawValue))")
            exitCode = status.code
            break receiving
        case let other: say("caller: unexpected \(other.kind.rawValue)")
        }
    }
    socket.descriptor.close()
    _ = try child.wait()

    say("\n== 2. hostile frames: each one is refused with a stable code, and the service survives to say so")
    let hostile: [(String, [UInt8])] = [
        ("a duplicate key", frame(header: #"{"type":"eof","stream":"stdin","stream":"stdout"}"#)),
        ("stderr sent by the caller (QSB-087)", frame(header: #"{"type":"eof","stream":"stderr"}"#)),
        ("an exit status sent by the caller", frame(header: #"{"type":"exit","code":0,"reason":"exited"}"#)),
        ("a 4 GiB length prefix", [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]),
        ("invalid UTF-8", frame(header: Array(#"{"type":"eof","stream":"std?"}"#.utf8).map { $0 == 0x3F ? 0xFF : $0 })),
    ]
    for (label, bytes) in hostile {
        let (socket, child) = try startService()
        say("caller: sends \(label)")
        try socket.send(bytes)
        if let (reply, _) = try socket.receive(maxBytes: WireLimits.default.maxFrameBytes),
            case .error(let report) = try decoder.decode(datagram: reply)
        {
            say("caller: the service answered error \(report.code.rawValue) (\(report.code.name))")
        }
        socket.descriptor.close()
        _ = try child.wait()
    }
    return exitCode == 0 ? 0 : 1
}

func frame(header: String) -> [UInt8] { frame(header: Array(header.utf8)) }

func frame(header json: [UInt8]) -> [UInt8] {
    var bytes: [UInt8] = []
    withUnsafeBytes(of: UInt32(json.count).littleEndian) { bytes += $0 }
    withUnsafeBytes(of: UInt32(0).littleEndian) { bytes += $0 }
    return bytes + json
}

if arguments.contains("--service") {
    exit(runService())
}
do {
    exit(try runCaller())
} catch {
    say("frame-demo: \(error)")
    exit(1)
}
