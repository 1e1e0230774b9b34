import SluiceSystem
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// Which vchan implementation a program uses: the local one (shared memory and a rendezvous socket, any Linux host)
/// or Xen's libxenvchan (grant tables, event channels and xenstore, between Xen domains). Both give the same
/// `Vchan` protocol, so the programs above never know which one runs.
public enum VchanTransport: Sendable {
    case local(VchanRendezvous)
    case xen

    /// How a program's options name a transport: `local` with its rendezvous socket, or `xen`.
    public enum Choice: Sendable, Hashable {
        case local(rendezvousPath: String)
        case xen

        /// `--transport local|xen` (default local), with the local rendezvous path when it is local.
        public static func parse(_ name: String?, rendezvousPath: String?) throws(SluiceError) -> Choice {
            switch name ?? "local" {
            case "xen": return .xen
            case "local":
                guard let rendezvousPath else {
                    throw SluiceError(.vchanNotFound, "the local transport needs a rendezvous socket (--rendezvous)")
                }
                return .local(rendezvousPath: rendezvousPath)
            default:
                throw SluiceError(.xenUnavailable, "unknown transport '\(name ?? "")': use local or xen")
            }
        }
    }

    /// Opens the transport a choice names (connects to the local rendezvous).
    public static func open(_ choice: Choice) throws(SluiceError) -> VchanTransport {
        switch choice {
        case .local(let path): return .local(try VchanRendezvous(path: path))
        case .xen: return .xen
        }
    }

    public func server(peer: DomainID, port: VchanPort, readMinimum: Int, writeMinimum: Int) throws(SluiceError)
        -> any Vchan
    {
        switch self {
        case .local(let rendezvous):
            return try LocalVchan.server(
                rendezvous: rendezvous, peer: peer, port: port, readMinimum: readMinimum, writeMinimum: writeMinimum)
        case .xen:
            return try XenVchan.server(peer: peer, port: port, readMinimum: readMinimum, writeMinimum: writeMinimum)
        }
    }

    /// Connects as `client(server:port:)` does, trying again while the server has not offered the vchan yet
    /// (`vchan-not-found`), for up to `timeoutMilliseconds`: first after 100 µs (a call's two sides meet within a
    /// few hundred), then twice as long each time up to 10 ms, and after the first 200 ms up to 100 ms: a peer that
    /// never offers (a half-open call from a hostile domain) costs about ten attempts a second, not a hundred.
    /// As `client(server:port:)`, retrying while no server is there yet, for up to `timeoutMilliseconds`, unless
    /// `stop` says to give up (then `cancelled`).
    public func client(
        server: DomainID, port: VchanPort, retryingFor timeoutMilliseconds: Int, stop: () -> Bool = { false }
    ) throws(SluiceError) -> any Vchan {
        let started = MonotonicClock.milliseconds
        let deadline = started + timeoutMilliseconds
        var pause: UInt32 = 100
        while true {
            do {
                return try client(server: server, port: port)
            } catch {
                guard error.code == .vchanNotFound, MonotonicClock.milliseconds < deadline else { throw error }
                if stop() { throw SluiceError(.cancelled, "the call was cancelled before its caller served it") }
                usleep(pause)
                pause = min(pause * 2, MonotonicClock.milliseconds - started < 200 ? 10_000 : 100_000)
            }
        }
    }

    public func client(server: DomainID, port: VchanPort) throws(SluiceError) -> any Vchan {
        switch self {
        case .local(let rendezvous): return try LocalVchan.client(rendezvous: rendezvous, server: server, port: port)
        case .xen: return try XenVchan.client(server: server, port: port)
        }
    }
}
