/// SluicePolicy: the Qubes policy v5 parser and evaluator (pure, no I/O), the directory loader at its edge, and the
/// atomic hot-reload swap. Filled by the policy issue.
public enum SluicePolicy {
    /// The pipeline stage this module owns; see docs/architecture.md.
    public static let stage = "policy"
}
