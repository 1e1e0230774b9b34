import SluiceSystem
import SluiceTesting
import SluiceVchan
import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// An agent gone bad in ways only the call table can see through: every frame it sends is well formed, but it speaks
/// about calls that are not its own, in an order that does not fit, or as a target that never reports. Each mode
/// prints one line saying what the daemon did.
enum RogueAgent {
    /// What the daemon sent back within `milliseconds`: `cut-off CODE` if it closed the channel (after an `error`
    /// frame naming the code), or `open` if the channel stayed up.
    static func outcome(_ link: VchanFrameLink, milliseconds: Int) throws -> String {
        var code = "none"
        let deadline = monotonicMilliseconds() + milliseconds
        do throws(SluiceError) {
            while monotonicMilliseconds() < deadline {
                let remaining = Int32(clamping: max(deadline - monotonicMilliseconds(), 1))
                if case .error(let report)? = try link.receive(timeoutMilliseconds: remaining) {
                    code = report.code.name
                }
            }
        } catch {
            guard error.code == .channelClosed else { throw error }
            return "cut-off \(code)"
        }
        return "open"
    }

    /// `forge-done --call ID`: reports that call ID (another domain's) ended with 77.
    static func forgeDone(_ vchan: any Vchan, call: UInt64) throws -> String {
        let link = try HostileAgent.handshake(vchan)
        try link.send(.done(CallReport(call: RequestID(rawValue: call)!, exitCode: 77, bytesIn: 7, bytesOut: 7)))
        return "forge-done " + (try outcome(link, milliseconds: 5_000))
    }

    /// `own-done --count N`: calls test.Sleep on vault N times and serves none of them (half-open); then reports the
    /// end of each call it was admitted for, as if it were their target. Returns how many calls were admitted and
    /// what the daemon did, and leaves the channel to `connectAgain` for a second round of N calls, whose admissions
    /// it counts too: `own-done first C cut-off CODE second C2`.
    static func ownDone(_ vchan: any Vchan, count: Int, connectAgain: () throws -> any Vchan) throws -> String {
        let link = try HostileAgent.handshake(vchan)
        let first = try admitted(link, count: count, firstID: 1)
        // The daemon cuts the channel at the first; the rest may find it closed.
        for call in first {
            guard (try? link.send(.done(CallReport(call: call, exitCode: 0, bytesIn: 0, bytesOut: 0)))) != nil else {
                break
            }
        }
        let cut = try outcome(link, milliseconds: 3_000)
        vchan.close()
        let second: [RequestID]
        do {
            let again = try HostileAgent.handshake(try connectAgain())
            second = try admitted(again, count: count, firstID: UInt64(count) + 1)
        } catch {
            throw VchanScenario.Failure("after \(cut), on the next channel: \(error)")
        }
        return "own-done first \(first.count) \(cut) second \(second.count)"
    }

    /// Sends `count` calls to test.Sleep on vault and returns the ids of those the daemon admitted (`connect`).
    static func admitted(_ link: VchanFrameLink, count: Int, firstID: UInt64) throws -> [RequestID] {
        let call = try ServiceCall(parsing: "test.Sleep")
        let target = try TargetName("vault")
        for index in 0..<UInt64(count) {
            try link.send(.call(CallRequest(id: RequestID(rawValue: firstID + index)!, call: call, target: target)))
        }
        var calls: [RequestID] = []
        var answered = 0
        while answered < count, let message = try link.receive(timeoutMilliseconds: 5_000) {
            switch message {
            case .connect(let order):
                calls.append(order.call)
                answered += 1
            case .refused: answered += 1
            default: break
            }
        }
        return calls
    }

    /// `ping`: pings twice, and reports whether each pong echoed its nonce on a channel that stayed open.
    static func ping(_ vchan: any Vchan) throws -> String {
        let link = try HostileAgent.handshake(vchan)
        var pongs: [UInt64] = []
        for nonce: UInt64 in [41, 42] {
            try link.send(.ping(nonce))
            while let message = try link.receive(timeoutMilliseconds: 5_000) {
                if case .pong(let echoed) = message {
                    pongs.append(echoed)
                    break
                }
            }
        }
        return "ping pongs \(pongs.map(String.init).joined(separator: ",")) " + (try outcome(link, milliseconds: 200))
    }

    /// `call-cancel`: sends a call to test.Sleep on vault and its cancel in one burst (the cancel right behind the
    /// call), then reports what came back for it: `refused CODE` or `connect`, and then anything more.
    static func callCancel(_ vchan: any Vchan) throws -> String {
        let link = try HostileAgent.handshake(vchan)
        let id = RequestID(rawValue: 1)!
        try link.send(
            .call(CallRequest(id: id, call: try ServiceCall(parsing: "test.Sleep"), target: try TargetName("vault"))))
        try link.send(.cancel(id))
        var seen: [String] = []
        while let message = try link.receive(timeoutMilliseconds: 2_000) {
            switch message {
            case .refused(let refusal): seen.append("refused \(refusal.code.name)")
            case .connect(let order): seen.append("connect \(order.call)")
            default: seen.append(message.kind.rawValue)
            }
        }
        return "call-cancel " + seen.joined(separator: ", ")
    }

    /// `silent-target --count N`: serves N calls as their target (the caller gets hello, its output, an exit status
    /// of 0) but never reports their end to the daemon, and ignores its cancels. `early-data`: serves one call,
    /// sending stdout before hello.
    static func target(_ vchan: any Vchan, transport: VchanTransport, count: Int, earlyData: Bool) throws -> String {
        let link = try HostileAgent.handshake(vchan)
        say("ok target connected")
        var served = 0
        var cancels = 0
        while served < count, let message = try link.receive(timeoutMilliseconds: 30_000) {
            switch message {
            case .exec(let order):
                let data = try transport.client(
                    server: order.rendezvous.domain, port: order.rendezvous.port, retryingFor: 10_000)
                let call = VchanFrameLink(vchan: data, receiving: .callerToService)
                let output = Array((earlyData ? "before hello\n" : "silent\n").utf8)
                if earlyData { try call.send(.data(DataChunk(stream: .stdout, bytes: output))) }
                try call.send(.hello(.current))
                if !earlyData { try call.send(.data(DataChunk(stream: .stdout, bytes: output))) }
                try call.send(.eof(.stdout))
                try call.send(.eof(.stderr))
                try call.send(.exit(ExitStatus(code: 0, reason: .exited)))
                data.closeAfterPeer()
                served += 1
            case .cancel: cancels += 1
            default: break
            }
        }
        // Whatever cancels the daemon sends for the calls served, counted for a moment longer.
        while let message = try? link.receive(timeoutMilliseconds: 1_500) {
            if case .cancel = message { cancels += 1 }
        }
        return "target served \(served) cancels \(cancels)"
    }
}
