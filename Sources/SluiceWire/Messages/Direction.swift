/// The three kinds of channel and who sends on them. Every message type may travel only in the directions
/// listed for it in `MessageKind.directions`; anything else is `wrong-direction` (120), checked before the
/// header's fields are read (qrexec's QSB-087 came from a caller sending the service-only stderr stream).
///
/// - client channel: a local UNIX socket between a caller (`sluice-call`, `SluiceClient`) and its domain's agent;
/// - control channel: one vchan per domain between that domain's agent and the admin domain's daemon;
/// - data channel: one vchan per call between the caller's side and the service's side.
public enum Direction: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case clientToAgent = "client->agent"
    case agentToClient = "agent->client"
    case agentToDaemon = "agent->daemon"
    case daemonToAgent = "daemon->agent"
    case callerToService = "caller->service"
    case serviceToCaller = "service->caller"

    /// The direction of the replies on the same channel.
    public var reversed: Direction {
        switch self {
        case .clientToAgent: .agentToClient
        case .agentToClient: .clientToAgent
        case .agentToDaemon: .daemonToAgent
        case .daemonToAgent: .agentToDaemon
        case .callerToService: .serviceToCaller
        case .serviceToCaller: .callerToService
        }
    }

    public var description: String { rawValue }
}
