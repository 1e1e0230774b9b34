/// SluiceAgent: `sluice-agent`'s library. The control channel to the daemon, the local client socket, and the
/// dispatch of incoming calls through the registry. Filled by the daemon/agent/client issue.
public enum SluiceAgent {
    /// The pipeline stage this module owns; see docs/architecture.md.
    public static let stage = "agent"
}
