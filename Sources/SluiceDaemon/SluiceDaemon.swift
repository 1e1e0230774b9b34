/// SluiceDaemon: `sluiced`'s library. One control channel per domain, request validation, policy decisions,
/// call brokering, the audit log. Filled by the daemon/agent/client issue.
public enum SluiceDaemon {
    /// The pipeline stage this module owns; see docs/architecture.md.
    public static let stage = "daemon"
}
