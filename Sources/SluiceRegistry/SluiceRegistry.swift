/// SluiceRegistry: service lookup (`SERVICE+ARG` before `SERVICE`), per-service configuration, and handler
/// execution with qrexec's argv, environment and exit-code mapping. Filled by the registry issue.
public enum SluiceRegistry {
    /// The pipeline stage this module owns; see docs/architecture.md.
    public static let stage = "registry"
}
