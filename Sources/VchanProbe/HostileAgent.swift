import SluiceSystem
import SluiceTesting
import SluiceVchan
import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// A domain's agent gone bad: it takes a control channel, says hello properly, then sends one attack and reports
/// what the daemon did about it: `cut-off` (the daemon closed the channel), `refused CODE` (a `refused` frame came
/// back and the channel stayed open), or `ignored` (nothing within 5 s, which the tests count as a failure).
enum HostileAgent {
    enum Attack: String, CaseIterable {
        /// Bytes that are no frame at all.
        case garbage
        /// A prefix announcing a 2^32−1-byte header.
        case oversized
        /// A prefix announcing more bytes than the datagram holds.
        case truncated
        /// A call whose header repeats a key.
        case duplicateKey = "duplicate-key"
        /// A header nested far deeper than any message needs.
        case deep
        /// A header that is not UTF-8.
        case nonUTF8 = "non-utf8"
        /// A `data` frame, which only travels on data channels from a service.
        case wrongDirection = "wrong-direction"
        /// A call with a `source` field naming another domain.
        case spoofedSource = "spoofed-source"
        /// A valid call that asks to be treated as coming from another domain (`requested_source`).
        case requestedSource = "requested-source"
        /// A service name with a `/` in it.
        case forbiddenBytes = "forbidden-bytes"
        /// A valid call whose argument is longer than the daemon's request limit.
        case longRequest = "long-request"
    }

    static func frame(header: [UInt8], payload: [UInt8] = []) -> [UInt8] {
        func le(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
        return le(UInt32(header.count)) + le(UInt32(payload.count)) + header + payload
    }

    static func callHeader(argument: String = "x", requestedSource: String? = nil) throws -> String {
        let request = CallRequest(
            id: RequestID(rawValue: 1)!, call: try ServiceCall(parsing: "test.Echo+" + argument),
            target: try TargetName("vault"), requestedSource: try requestedSource.map { try DomainName($0) })
        let bytes = try FrameEncoder(direction: .agentToDaemon).encode(.call(request))
        return String(decoding: bytes.dropFirst(WireLimits.prefixBytes), as: UTF8.self)
    }

    static func bytes(for attack: Attack) throws -> [UInt8] {
        switch attack {
        case .garbage:
            var pattern = Pattern(seed: 13)
            return frame(header: pattern.bytes(200))
        case .oversized:
            return [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0] + Array(#"{"type":"ping"}"#.utf8)
        case .truncated:
            return Array(frame(header: Array(try callHeader().utf8)).dropLast(10))
        case .duplicateKey:
            return frame(header: Array(try callHeader().replacingOccurrences(of: "{", with: #"{"id":2,"#).utf8))
        case .deep:
            let nested = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
            return frame(header: Array(#"{"type":"ping","nonce":\#(nested)}"#.utf8))
        case .nonUTF8:
            return frame(header: Array(#"{"type":"call","service":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8))
        case .wrongDirection:
            return try FrameEncoder(direction: .serviceToCaller).encode(
                .data(DataChunk(stream: .stdout, bytes: [1, 2, 3])))
        case .spoofedSource:
            return frame(
                header: Array(try callHeader().replacingOccurrences(of: "{", with: #"{"source":"vault","#).utf8))
        case .requestedSource:
            return frame(header: Array(try callHeader(requestedSource: "vault").utf8))
        case .forbiddenBytes:
            return frame(header: Array(try callHeader().replacingOccurrences(of: "test.Echo", with: "test/Echo").utf8))
        case .longRequest:
            return frame(header: Array(try callHeader(argument: String(repeating: "a", count: 2_000)).utf8))
        }
    }

    /// Takes the control channel as an agent would: hello out, hello back.
    static func handshake(_ vchan: any Vchan) throws -> VchanFrameLink {
        let link = VchanFrameLink(vchan: vchan, receiving: .daemonToAgent)
        try link.send(.hello(.current))
        guard case .hello? = try link.receive(timeoutMilliseconds: 10_000) else {
            throw VchanScenario.Failure("the daemon did not say hello")
        }
        return link
    }

    static func run(_ vchan: any Vchan, attack: Attack) throws -> String {
        let link = try handshake(vchan)
        let attackBytes = try bytes(for: attack)
        while try !vchan.send(attackBytes) { try vchan.wait() }
        let started = monotonicMilliseconds()
        do {
            while let message = try link.receive(timeoutMilliseconds: 5_000) {
                if case .refused(let refusal) = message {
                    return "refused \(refusal.code.name) in \(monotonicMilliseconds() - started) ms"
                }
            }
        } catch {
            guard error.code == .channelClosed else { throw error }
            return "cut-off in \(monotonicMilliseconds() - started) ms"
        }
        return "ignored"
    }

    /// Takes the control channel, says hello, calls `connected`, then reads nothing more for `holdMilliseconds`: a
    /// target that lets the daemon's orders pile up in its ring. Reports `deaf cut-off` if the daemon closed the
    /// channel meanwhile (the probe only looks at the end), else `deaf held`.
    static func deaf(_ vchan: any Vchan, holdMilliseconds: Int, connected: () -> Void) throws -> String {
        _ = try handshake(vchan)
        connected()
        usleep(useconds_t(holdMilliseconds) * 1_000)
        return vchan.state == .closed ? "deaf cut-off" : "deaf held"
    }

    /// Sends `count` valid calls (test.Echo to vault) at `perSecond` a second (0: as fast as the ring takes them),
    /// never sending anything it cannot without waiting and never serving a data channel: a storm, and every admitted
    /// call left half-open. Reads what comes back meanwhile and for `linger` ms after, and reports a tally:
    /// `flood sent N connect C rate-limited R too-many-calls T ... in S ms`.
    static func flood(_ vchan: any Vchan, count: Int, perSecond: Int, lingerMilliseconds: Int) throws -> String {
        let link = try handshake(vchan)
        vchan.isBlocking = false
        var tally: [String: Int] = [:]
        func drain() throws {
            while let message = try link.receiveIfReady() {
                switch message {
                case .refused(let refusal): tally[refusal.code.name, default: 0] += 1
                case .connect: tally["connect", default: 0] += 1
                default: tally["other", default: 0] += 1
                }
            }
        }
        let started = MonotonicClock.nanoseconds
        var sent = 0
        let encoder = FrameEncoder(direction: .agentToDaemon)
        let call = try ServiceCall(parsing: "test.Echo+storm")
        let target = try TargetName("vault")
        while sent < count {
            if perSecond > 0 {
                let due = started + UInt64(sent) * 1_000_000_000 / UInt64(perSecond)
                while MonotonicClock.nanoseconds < due {
                    try drain()
                    usleep(50)
                }
            }
            let frame = try encoder.encode(
                .call(CallRequest(id: RequestID(rawValue: UInt64(sent + 1))!, call: call, target: target)))
            if try vchan.send(frame) {
                sent += 1
            } else {
                try drain()
                usleep(100)
            }
        }
        let sendingMilliseconds = (MonotonicClock.nanoseconds - started) / 1_000_000
        let lingerEnd = MonotonicClock.milliseconds + lingerMilliseconds
        while MonotonicClock.milliseconds < lingerEnd {
            try drain()
            usleep(1_000)
        }
        let parts = tally.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: " ")
        return "flood sent \(sent) \(parts) in \(sendingMilliseconds) ms"
    }
}
