import SluiceSystem
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// What the daemon asks of the system that runs domains: start a halted one (autostart), make a disposable from a
/// template, and destroy a disposable after its call. `sluice-host` serves the local implementation on a socket
/// (`SocketToolstack`); on Xen the same three requests go to a command around `xl` (`CommandToolstack`).
public protocol Toolstack: Sendable {
    /// Starts a halted domain; returns once it is starting (the daemon then waits for its agent).
    func start(_ name: DomainName) throws(SluiceError)
    /// Creates a disposable from `template` and returns its name and domain id.
    func createDisposable(template: DomainName) throws(SluiceError) -> (name: DomainName, id: DomainID)
    /// Destroys a disposable made by `createDisposable`.
    func destroy(_ name: DomainName) throws(SluiceError)
}

/// The toolstack's text protocol, one request and one reply per request:
/// `start NAME` → `ok`; `create TEMPLATE` → `ok NAME ID`; `destroy NAME` → `ok`; any failure → `error: WHY`.
public enum ToolstackReply {
    static func parse(_ text: String, request: String) throws(SluiceError) -> [Substring] {
        let trimmed = text.hasSuffix("\n") ? String(text.dropLast()) : text
        let words = trimmed.split(separator: " ", omittingEmptySubsequences: true)
        guard words.first == "ok" else {
            throw SluiceError(.toolstackFailed, "the toolstack refused '\(request)': \(trimmed.prefix(200))")
        }
        return Array(words.dropFirst())
    }

    static func disposable(_ words: [Substring], request: String) throws(SluiceError) -> (
        name: DomainName, id: DomainID
    ) {
        guard words.count == 2, let name = try? DomainName(String(words[0])),
            let raw = UInt16(words[1]), let id = DomainID(rawValue: raw), id != .admin
        else {
            throw SluiceError(.toolstackFailed, "the toolstack answered '\(request)' with no valid NAME ID")
        }
        return (name, id)
    }
}

/// The local toolstack: `sluice-host`'s datagram socket (`RUN_DIR/toolstack.sock`).
public struct SocketToolstack: Toolstack {
    public let path: String

    public init(path: String) { self.path = path }

    private func request(_ text: String) throws(SluiceError) -> [Substring] {
        let socket = DatagramSocket(descriptor: try UnixSocket.connect(to: path, kind: .datagram))
        defer { socket.descriptor.close() }
        try socket.send(Array(text.utf8))
        guard try Readiness.wait(socket.descriptor, timeoutMilliseconds: 30_000).first,
            let reply = try socket.receive(maxBytes: 1_024)
        else {
            throw SluiceError(.toolstackFailed, "the toolstack did not answer '\(text)'")
        }
        return try ToolstackReply.parse(String(decoding: reply.bytes, as: UTF8.self), request: text)
    }

    public func start(_ name: DomainName) throws(SluiceError) { _ = try request("start \(name.rawValue)") }

    public func createDisposable(template: DomainName) throws(SluiceError) -> (name: DomainName, id: DomainID) {
        let text = "create \(template.rawValue)"
        return try ToolstackReply.disposable(try request(text), request: text)
    }

    public func destroy(_ name: DomainName) throws(SluiceError) { _ = try request("destroy \(name.rawValue)") }
}

/// The toolstack as a command, for Xen: `COMMAND start NAME`, `COMMAND create TEMPLATE`, `COMMAND destroy NAME`,
/// each run with `/bin/sh -c` and the words as positional parameters, answering on stdout with the same replies
/// as the socket (`ok`, `ok NAME ID`, `error: WHY`). A wrapper around `xl create` / `xl destroy` fits here.
public struct CommandToolstack: Toolstack {
    public let command: String

    public init(command: String) { self.command = command }

    private func run(_ words: [String]) throws(SluiceError) -> [Substring] {
        let text = words.joined(separator: " ")
        let output = try Pipe()
        let child = try ChildProcess.spawn(
            path: "/bin/sh", arguments: ["/bin/sh", "-c", command + " \"$@\"", "sluice-toolstack"] + words,
            environment: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            descriptors: [(output.writeEnd, 1), (.standardError, 2)])
        output.writeEnd.close()
        defer { output.readEnd.close() }
        var reply: [UInt8] = []
        let deadline = MonotonicClock.milliseconds + 60_000
        while reply.count < 4_096 {
            let remaining = deadline - MonotonicClock.milliseconds
            guard remaining > 0, try Readiness.wait(output.readEnd, timeoutMilliseconds: Int32(remaining)).first
            else {
                child.send(signal: SIGKILL)
                break
            }
            let bytes = try output.readEnd.read(upTo: 4_096)
            if bytes.isEmpty { break }
            reply += bytes
        }
        let status = try child.wait()
        guard status == .exited(0) else {
            throw SluiceError(.toolstackFailed, "the toolstack command failed for '\(text)' (\(status))")
        }
        return try ToolstackReply.parse(String(decoding: reply, as: UTF8.self), request: text)
    }

    public func start(_ name: DomainName) throws(SluiceError) { _ = try run(["start", name.rawValue]) }

    public func createDisposable(template: DomainName) throws(SluiceError) -> (name: DomainName, id: DomainID) {
        try ToolstackReply.disposable(try run(["create", template.rawValue]), request: "create \(template.rawValue)")
    }

    public func destroy(_ name: DomainName) throws(SluiceError) { _ = try run(["destroy", name.rawValue]) }
}
