// sluice-vchan-probe: one end of a vchan, for the behaviour suite, the benchmarks and the real-Xen lab.
//
//   sluice-vchan-probe server --peer ID --port N [--read-min B] [--write-min B] --scenario S [common options]
//   sluice-vchan-probe client --server ID --port N --scenario S [common options]
//   sluice-vchan-probe client --server ID --port N --expect-refused [common options]
//   sluice-vchan-probe hostile --server 0 --port 512 --attack A   (a bad agent: see HostileAgent.swift)
//   sluice-vchan-probe flood --server 0 --port 512 --count N --rate R --linger-ms L   (a storm of calls, left
//                     half-open: see HostileAgent.flood)
//   sluice-vchan-probe deaf --server 0 --port 512 --hold-ms L   (an agent that stops reading its control
//                     channel; two lines: when connected, and at the end)
//   sluice-vchan-probe forge-done --call ID | own-done --count N | ping | call-cancel | silent-target --count N
//                     | early-data --server 0 --port 512   (an agent whose frames are well formed but whose
//                     messages are not its to send: see RogueAgent.swift)
//   sluice-vchan-probe bad-caller --kind pipe|unsealed|short|file|socket --server 0 --port 512   (a caller that
//                     serves its data channel with descriptors that are not a vchan's: see RogueRendezvous.swift)
//   sluice-vchan-probe fd-flood --connections C --registrations R --hold-ms H   (a domain that tries to hold the
//                     broker's descriptors)
//   sluice-vchan-probe many --server ID --port N --count C [common options]
//   sluice-vchan-probe bench-sink | bench-echo --server ID --port N [common options]
//   sluice-vchan-probe socket-sink | socket-echo   (fd 3 is a socket: the socketpair baselines)
// common options: --backend local|xen (default local), --rendezvous PATH (default $SLUICE_VCHAN_RENDEZVOUS)
//
// It prints one line, "ok ...", "refused ..." or "fail ...", and exits 0 on success.
import Logging
import SluiceSystem
import SluiceTesting
import SluiceVchan
import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

struct Options {
    var mode = ""
    var values: [String: String] = [:]
    var flags: Set<String> = []

    init(_ arguments: [String]) {
        mode = arguments.count > 1 ? arguments[1] : ""
        var index = 2
        while index < arguments.count {
            let key = arguments[index]
            if key == "--expect-refused" {
                flags.insert(key)
                index += 1
            } else if index + 1 < arguments.count {
                values[key] = arguments[index + 1]
                index += 2
            } else {
                index += 1
            }
        }
    }

    func int(_ key: String, _ fallback: Int? = nil) throws -> Int {
        guard let text = values[key] ?? fallback.map(String.init), let value = Int(text) else {
            throw VchanScenario.Failure("missing or invalid \(key)")
        }
        return value
    }

    func domain(_ key: String) throws -> DomainID {
        guard let id = DomainID(rawValue: UInt16(clamping: try int(key))) else {
            throw VchanScenario.Failure("bad \(key)")
        }
        return id
    }

    func port() throws -> VchanPort {
        guard let port = VchanPort(rawValue: UInt16(clamping: try int("--port"))) else {
            throw VchanScenario.Failure("bad --port")
        }
        return port
    }

    var isXen: Bool { values["--backend"] == "xen" }

    func rendezvous() throws -> VchanRendezvous {
        if let path = values["--rendezvous"] { return try VchanRendezvous(path: path) }
        return try VchanRendezvous.fromEnvironment()
    }

    func scenario() throws -> VchanScenario {
        guard let name = values["--scenario"], let scenario = VchanScenario(rawValue: name) else {
            throw VchanScenario.Failure("unknown --scenario; one of \(VchanScenario.allCases.map(\.rawValue))")
        }
        return scenario
    }

    /// Connects as a client, retrying for up to `--retry-ms` (default 10 s) while the server is not there yet.
    func connect(server: DomainID, port: VchanPort, rendezvous: VchanRendezvous?) throws -> any Vchan {
        let transport: VchanTransport = isXen ? .xen : .local(rendezvous!)
        return try transport.client(server: server, port: port, retryingFor: try int("--retry-ms", 10_000))
    }
}

extension Options {
    /// The daemon's control channel as this domain's agent would take it. The daemon offers a domain's control
    /// channel again a moment after cutting it off; meanwhile the broker may answer that port 512 is reserved (for the
    /// other domains' agents) or not offered: both mean "not yet" for up to 10 s.
    func controlChannel(_ rendezvous: VchanRendezvous?) throws -> any Vchan {
        let deadline = monotonicMilliseconds() + 10_000
        while true {
            do {
                return try connect(server: try domain("--server"), port: try port(), rendezvous: rendezvous)
            } catch let error as SluiceError
                where (error.code == .vchanRefused || error.code == .vchanNotFound)
                && monotonicMilliseconds() < deadline
            {
                usleep(10_000)
            }
        }
    }
}

func say(_ line: String) {
    try? FileDescriptor.standardOutput.writeAll(Array((line + "\n").utf8))
}

func run() throws -> Int32 {
    let options = Options(CommandLine.arguments)
    let rendezvous = options.isXen || options.mode.hasPrefix("socket-") ? nil : try options.rendezvous()
    switch options.mode {
    case "server":
        let peer = try options.domain("--peer")
        let port = try options.port()
        let readMin = try options.int("--read-min", 65_536)
        let writeMin = try options.int("--write-min", 65_536)
        let vchan: any Vchan =
            options.isXen
            ? try XenVchan.server(peer: peer, port: port, readMinimum: readMin, writeMinimum: writeMin)
            : try LocalVchan.server(
                rendezvous: rendezvous!, peer: peer, port: port, readMinimum: readMin, writeMinimum: writeMin)
        try vchan.waitForClient(timeoutMilliseconds: 30_000)
        say("ok " + (try options.scenario().runServer(vchan)))
        vchan.closeAfterPeer()
    case "client":
        let server = try options.domain("--server")
        let port = try options.port()
        if options.flags.contains("--expect-refused") {
            let outcome = Result { try options.connect(server: server, port: port, rendezvous: rendezvous) }
            switch outcome {
            case .success:
                say("fail connected to a vchan reserved for another domain")
                return 1
            case .failure(let error):
                guard let refusal = error as? SluiceError, refusal.code == .vchanRefused || refusal.code == .wrongUID
                else { throw error }
                say("refused \(refusal)")
                return 0
            }
        }
        let vchan = try options.connect(server: server, port: port, rendezvous: rendezvous)
        say("ok " + (try options.scenario().runClient(vchan)))
    case "hostile":
        guard let name = options.values["--attack"], let attack = HostileAgent.Attack(rawValue: name) else {
            throw VchanScenario.Failure("unknown --attack; one of \(HostileAgent.Attack.allCases.map(\.rawValue))")
        }
        say("ok " + (try HostileAgent.run(try options.controlChannel(rendezvous), attack: attack)))
    case "forge-done":
        say(
            "ok "
                + (try RogueAgent.forgeDone(
                    try options.controlChannel(rendezvous), call: UInt64(try options.int("--call")))))
    case "own-done":
        let connectAgain = { () throws -> any Vchan in try options.controlChannel(rendezvous) }
        say(
            "ok "
                + (try RogueAgent.ownDone(
                    try options.controlChannel(rendezvous), count: try options.int("--count"),
                    connectAgain: connectAgain)))
    case "bad-caller":
        guard let path = options.values["--rendezvous"], let kind = options.values["--kind"] else {
            throw VchanScenario.Failure("bad-caller needs --rendezvous and --kind")
        }
        say(
            "ok "
                + (try RogueRendezvous.badCaller(try options.controlChannel(rendezvous), rendezvous: path, kind: kind)))
    case "fd-flood":
        guard let path = options.values["--rendezvous"] else {
            throw VchanScenario.Failure("fd-flood needs --rendezvous")
        }
        ProcessDescriptors.raiseLimit(to: 65_536)
        say(
            "ok "
                + (try RogueRendezvous.flood(
                    path: path, connections: try options.int("--connections"),
                    registrations: try options.int("--registrations"), holdMilliseconds: try options.int("--hold-ms"))))
    case "ping":
        say("ok " + (try RogueAgent.ping(try options.controlChannel(rendezvous))))
    case "call-cancel":
        say("ok " + (try RogueAgent.callCancel(try options.controlChannel(rendezvous))))
    case "silent-target", "early-data":
        let transport: VchanTransport = options.isXen ? .xen : .local(rendezvous!)
        say(
            "ok "
                + (try RogueAgent.target(
                    try options.controlChannel(rendezvous), transport: transport,
                    count: options.mode == "early-data" ? 1 : try options.int("--count"),
                    earlyData: options.mode == "early-data")))
    case "deaf":
        let vchan = try options.connect(
            server: try options.domain("--server"), port: try options.port(), rendezvous: rendezvous)
        let hold = try options.int("--hold-ms")
        say("ok " + (try HostileAgent.deaf(vchan, holdMilliseconds: hold) { say("ok deaf connected") }))
    case "flood":
        let vchan = try options.connect(
            server: try options.domain("--server"), port: try options.port(), rendezvous: rendezvous)
        say(
            "ok "
                + (try HostileAgent.flood(
                    vchan, count: try options.int("--count"), perSecond: try options.int("--rate"),
                    lingerMilliseconds: try options.int("--linger-ms"))))
    case "many":
        ProcessDescriptors.raiseLimit(to: 16_384)
        let server = try options.domain("--server")
        let first = try options.port()
        let count = try options.int("--count")
        let before = ProcessDescriptors.openCount
        var vchans: [any Vchan] = []
        for index in 0..<count {
            guard let port = VchanPort(rawValue: first.rawValue &+ UInt16(index)) else {
                throw VchanScenario.Failure("port overflow")
            }
            vchans.append(try options.connect(server: server, port: port, rendezvous: rendezvous))
        }
        for vchan in vchans {
            guard let datagram = try vchan.receive(count: 8) else { throw VchanScenario.Failure("short read") }
            try vchan.send(datagram)
        }
        let open = ProcessDescriptors.openCount
        for vchan in vchans { vchan.close() }
        vchans.removeAll()
        let after = ProcessDescriptors.openCount
        guard after == before else { throw VchanScenario.Failure("descriptors: \(before) before, \(after) after") }
        say("ok echoed on \(count) vchans; descriptors \(before) -> \(open) -> \(after)")
    case "bench-sink":
        // Receives datagrams of the size given in the first one until the announced total, then acknowledges.
        let vchan = try options.connect(
            server: try options.domain("--server"), port: try options.port(), rendezvous: rendezvous)
        guard let header = try vchan.receive(count: 16) else { throw VchanScenario.Failure("no header") }
        let size = header.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let total = header.suffix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        var buffer = [UInt8](repeating: 0, count: size)
        var received = 0
        while received < total {
            _ = try buffer.withUnsafeMutableBytes { try vchan.receive(into: $0) }
            received += size
        }
        try vchan.send([1])
        _ = try? vchan.receive(count: 1)
    case "bench-echo":
        // Echoes 1-byte datagrams from the reactor thread until the peer closes.
        let vchan = try options.connect(
            server: try options.domain("--server"), port: try options.port(), rendezvous: rendezvous)
        vchan.isBlocking = false
        let reactor = try Reactor(logger: Logger(label: "sluice-vchan-probe"))
        let done = EventNotifierBox(try EventNotifier.create())
        let busyPoll: Reactor.Probe = { vchan.isReadable }
        let token = try reactor.register(try vchan.readinessDescriptor, busyPoll: busyPoll) {
            vchan.consumeEvents()
            do {
                while let byte = try vchan.receive(count: 1) { try vchan.send(byte) }
            } catch {
                done.notifier.signal()
            }
        }
        _ = try Readiness.wait(done.notifier.descriptor, timeoutMilliseconds: -1)
        reactor.unregister(token, descriptor: try vchan.readinessDescriptor)
        reactor.shutdown()
    case "socket-echo":
        let socket = FileDescriptor(rawValue: 3)
        while true {
            let bytes = try socket.read(upTo: 1)
            if bytes.isEmpty { break }
            try socket.writeAll(bytes)
        }
    case "socket-sink":
        let socket = FileDescriptor(rawValue: 3)
        let header = try socket.read(upTo: 8)
        let total = header.enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        var received = 0
        while received < total {
            let chunk = try socket.read(upTo: 65_536)
            if chunk.isEmpty { throw VchanScenario.Failure("socket closed early") }
            received += chunk.count
        }
        try socket.writeAll([1])
    default:
        throw VchanScenario.Failure("unknown mode \(options.mode); see the comment at the top of main.swift")
    }
    return 0
}

final class EventNotifierBox: Sendable {
    let notifier: EventNotifier
    init(_ notifier: EventNotifier) { self.notifier = notifier }
}

do {
    exit(try run())
} catch {
    say("fail \(error)")
    exit(1)
}
