import SluiceSystem
import SluiceTesting
import SluiceVchan
import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// A domain's process that abuses its vchan rendezvous directly (the broker's protocol, by hand): it offers vchans
/// with descriptors that are not what a vchan needs, or offers so many that it would hold the broker's descriptors.
enum RogueRendezvous {
    /// One connection to the broker, speaking its 8-byte requests (docs/vchan.md, "The local rendezvous").
    struct Connection {
        let socket: DatagramSocket

        init(path: String) throws {
            socket = DatagramSocket(descriptor: try UnixSocket.connect(to: path, kind: .datagram))
        }

        /// Offers `descriptors` as a vchan for `peer` on `port`; returns the broker's code (nil: accepted).
        func register(peer: DomainID, port: UInt16, _ descriptors: [FileDescriptor]) throws -> SluiceError.Code? {
            var request: [UInt8] = []
            for value: UInt16 in [1, peer.rawValue, port, 0] {
                withUnsafeBytes(of: value.littleEndian) { request += $0 }
            }
            do {
                try socket.send(request, descriptors: descriptors)
            } catch {
                // A broker that refused the connection at once left one reply to read.
                guard Readiness.peerGone(socket.descriptor) else { throw error }
            }
            guard let reply = try socket.receive(maxBytes: 4), reply.bytes.count == 4 else {
                throw VchanScenario.Failure("the broker closed the connection without a reply")
            }
            let code = UInt16(reply.bytes[0]) | UInt16(reply.bytes[1]) << 8
            return code == 0 ? nil : SluiceError.Code(rawValue: code)
        }
    }

    /// A set of descriptors that is a vchan's in kind: a sealed memfd of one page, two eventfds, a socket.
    static func validSet() throws -> [FileDescriptor] {
        [
            try SharedMemory.create(name: "rogue", size: 4_096), try EventNotifier.create().descriptor,
            try EventNotifier.create().descriptor, try DatagramSocket.pair().1.descriptor,
        ]
    }

    /// A set with one descriptor that is not what it claims to be.
    static func badSet(_ kind: String) throws -> [FileDescriptor] {
        var set = try validSet()
        switch kind {
        case "pipe": set[1] = try Pipe().readEnd  // a blocking pipe where the server's eventfd belongs
        case "unsealed": set[0] = try SharedMemory.create(name: "rogue", size: 4_096, sealed: false)
        case "short": set[0] = try SharedMemory.create(name: "rogue", size: 100)
        case "file": set[0] = FileDescriptor(rawValue: open("/proc/self/exe", O_RDONLY | O_CLOEXEC))
        case "socket": set[0] = try DatagramSocket.pair().0.descriptor  // a socket where the memory belongs
        default: throw VchanScenario.Failure("unknown --kind \(kind); one of pipe, unsealed, short, file, socket")
        }
        return set
    }

    /// `bad-caller --kind K`: as a rogue agent, asks for a call to test.Echo on vault and, once allowed, serves the
    /// data channel with a bad descriptor set; reports the broker's answer, then cancels the call as a caller that
    /// gives up would: `bad-caller K CODE`.
    static func badCaller(_ vchan: any Vchan, rendezvous path: String, kind: String) throws -> String {
        let link = try HostileAgent.handshake(vchan)
        let id = RequestID(rawValue: 1)!
        try link.send(
            .call(CallRequest(id: id, call: try ServiceCall(parsing: "test.Echo"), target: try TargetName("vault"))))
        var order: ConnectOrder?
        while order == nil, let message = try link.receive(timeoutMilliseconds: 10_000) {
            if case .connect(let connect) = message { order = connect }
            if case .refused(let refusal) = message { return "bad-caller \(kind) refused \(refusal.code.name)" }
        }
        guard let order else { throw VchanScenario.Failure("no connect order") }
        let code = try Connection(path: path).register(
            peer: order.rendezvous.domain, port: order.rendezvous.port.rawValue, try badSet(kind))
        try link.send(.cancel(id))
        usleep(200_000)
        return "bad-caller \(kind) \(code?.name ?? "accepted")"
    }

    /// `fd-flood --connections C --registrations R --hold-ms H`: opens up to C connections to its own rendezvous and
    /// offers up to R vchans (valid in kind, for vault, on ports from 20 000), stopping at the first refusal of each;
    /// prints what it got, then holds everything for H ms while others call:
    /// `fd-flood connections N refused CODE registrations M refused CODE`.
    static func flood(path: String, connections: Int, registrations: Int, holdMilliseconds: Int) throws -> String {
        // The same four descriptors, offered again and again: each offer the broker keeps holds four of its own.
        let set = try validSet()
        var open: [Connection] = []
        var connectionRefusal = "none"
        while open.count < connections {
            let connection = try Connection(path: path)
            // A connection over the limit is answered at once; the probe sees it when it first asks.
            if let code = try connection.register(peer: DomainID(rawValue: 2)!, port: UInt16(19_000 + open.count), set)
            {
                connectionRefusal = code.name
                break
            }
            open.append(connection)
        }
        var offered = open.count
        var registrationRefusal = "none"
        var index = 0
        flooding: while offered < registrations, !open.isEmpty {
            for connection in open where offered < registrations {
                if let code = try connection.register(
                    peer: DomainID(rawValue: 2)!, port: UInt16(20_000 + index % 40_000), set)
                {
                    registrationRefusal = code.name
                    break flooding
                }
                offered += 1
                index += 1
            }
        }
        say(
            "ok fd-flood connections \(open.count) refused \(connectionRefusal) registrations \(offered) refused \(registrationRefusal)"
        )
        usleep(useconds_t(holdMilliseconds) * 1_000)
        return "fd-flood done"
    }
}
