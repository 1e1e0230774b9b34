/// SluiceVchan: the vchan transport behind one API, with two backends: `local` (the libxenvchan shared-ring
/// layout over memfd pages, eventfd notifications) and `xen` (libxenvchan through CXenVchan), plus the epoll
/// reactor that hands whole frames to Swift concurrency. Filled by the vchan issue.
public enum SluiceVchan {
    /// The pipeline stage this module owns; see docs/architecture.md.
    public static let stage = "vchan"
}
