/// SluiceClient: the Swift client library (`call(target:service:argument:)`, typed calls) behind `sluice-call`.
/// Filled by the daemon/agent/client issue.
public enum SluiceClient {
    /// The pipeline stage this module owns; see docs/architecture.md.
    public static let stage = "client"
}
