import SluiceWire

/// One valid message of every kind, with a direction it may travel in.
enum Samples {
    static func id(_ value: UInt64) -> RequestID { RequestID(rawValue: value)! }

    static let rendezvous = Rendezvous(domain: DomainID(rawValue: 7)!, port: VchanPort(rawValue: 513)!)

    static var all: [(Message, Direction)] {
        get throws {
            [
                (.hello(.current), .agentToDaemon),
                (.hello(Hello(minVersion: 1, maxVersion: 9)), .serviceToCaller),
                (
                    .call(CallRequest(id: id(1), call: try ServiceCall(parsing: "qubes.Filecopy"), target: .default)),
                    .clientToAgent
                ),
                (
                    .call(
                        CallRequest(
                            id: id(RequestID.max),
                            call: try ServiceCall(parsing: "my.Service+a+b-c_d.e"),
                            target: try TargetName("@dispvm:work-dvm"),
                            requestedSource: try DomainName("remote1")
                        )
                    ), .agentToDaemon
                ),
                (.refused(Refusal(id: id(3), code: .invalidServiceName, message: "Request refused")), .agentToClient),
                (
                    .refused(Refusal(id: id(3), code: SluiceError.Code(rawValue: 9_999), message: "new \"code\"\n\\")),
                    .daemonToAgent
                ),
                (.connect(ConnectOrder(id: id(4), call: id(40), rendezvous: rendezvous)), .daemonToAgent),
                (
                    .connect(
                        ConnectOrder(
                            id: id(4), call: id(41),
                            rendezvous: Rendezvous(domain: rendezvous.domain, port: rendezvous.port, role: .client))),
                    .agentToClient
                ),
                (
                    .exec(
                        ExecOrder(
                            call: id(5),
                            serviceCall: try ServiceCall(parsing: "test.Echo+x"),
                            source: try DomainName("work"),
                            requestedTarget: try TargetName("@default"),
                            user: try UserName("user"),
                            rendezvous: rendezvous,
                            timeoutMilliseconds: 30_000
                        )
                    ), .daemonToAgent
                ),
                (
                    .exec(
                        ExecOrder(
                            call: id(6),
                            serviceCall: try ServiceCall(parsing: "test.Echo"),
                            source: try DomainName("vault"),
                            requestedTarget: try TargetName("dom0"),
                            rendezvous: Rendezvous(domain: rendezvous.domain, port: rendezvous.port, role: .server)
                        )
                    ), .daemonToAgent
                ),
                (.data(DataChunk(stream: .stdin, bytes: Array(0...255))), .callerToService),
                (.data(DataChunk(stream: .stdout, bytes: [0])), .serviceToCaller),
                (.data(DataChunk(stream: .stderr, bytes: Array(repeating: 0xFF, count: 65_536))), .serviceToCaller),
                (.eof(.stdin), .callerToService),
                (.eof(.stderr), .serviceToCaller),
                (.exit(ExitStatus(code: 137, reason: .signaled)), .serviceToCaller),
                (.exit(ExitStatus(code: 124, reason: .timeoutKilled)), .serviceToCaller),
                (.done(CallReport(call: id(8), exitCode: 0, bytesIn: 1 << 40, bytesOut: 0)), .agentToDaemon),
                (.cancel(id(9)), .clientToAgent),
                (.cancel(id(9)), .callerToService),
                (.ping(0), .daemonToAgent),
                (.pong(RequestID.max), .agentToDaemon),
                (.error(ErrorReport(code: .duplicateKey, message: "é ünïcödé ✓")), .agentToClient),
            ]
        }
    }

    /// A frame with a hand-written header and optional payload, for hostile inputs.
    static func frame(_ header: String, payload: [UInt8] = []) -> [UInt8] {
        frame(bytes: Array(header.utf8), payload: payload)
    }

    static func frame(bytes header: [UInt8], payload: [UInt8] = []) -> [UInt8] {
        prefix(UInt32(header.count), UInt32(payload.count)) + header + payload
    }

    static func prefix(_ headerLength: UInt32, _ payloadLength: UInt32) -> [UInt8] {
        var bytes: [UInt8] = []
        withUnsafeBytes(of: headerLength.littleEndian) { bytes += $0 }
        withUnsafeBytes(of: payloadLength.littleEndian) { bytes += $0 }
        return bytes
    }
}
