internal import CXenVchan
import SluiceSystem
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// What a Xen domain's daemon needs from xenstore: which domains exist, by id and name (`/local/domain/<id>/name`).
public enum XenStore {
    /// This domain's id (xenstore's `domid`). Throws `xen-unavailable` outside Xen.
    public static func ownDomainID() throws(SluiceError) -> UInt16 {
        let id = sluice_xen_own_domid()
        guard id >= 0, id <= Int32(UInt16.max) else {
            throw SluiceError(.xenUnavailable, "cannot read this domain's id from xenstore: this is not a Xen domain")
        }
        return UInt16(id)
    }

    /// Every domain xenstore lists with a name, dom0 included. Throws `xen-unavailable` outside Xen.
    public static func domains() throws(SluiceError) -> [(id: DomainID, name: String)] {
        let maximum = 1_024
        let stride = 64
        var ids = [Int32](repeating: 0, count: maximum)
        var names = [CChar](repeating: 0, count: maximum * stride)
        let count = sluice_xen_list_domains(&ids, &names, Int32(stride), Int32(maximum))
        guard count >= 0 else {
            throw SluiceError(.xenUnavailable, "cannot list /local/domain in xenstore: this is not a Xen domain")
        }
        var result: [(id: DomainID, name: String)] = []
        for index in 0..<Int(count) {
            guard let id = DomainID(rawValue: UInt16(clamping: ids[index])) else { continue }
            let name = names[(index * stride)..<(index * stride + stride)].withUnsafeBufferPointer {
                String(cString: $0.baseAddress!)
            }
            result.append((id, name))
        }
        return result
    }
}

/// A watch on xenstore for domains that appear or go away (`@introduceDomain`, `@releaseDomain`): the daemon waits on
/// it instead of reading xenstore every half second.
public final class XenDomainWatch: @unchecked Sendable {
    // One waiter at a time (the daemon's one task); xenstore's handle is not shared.
    private let handle: OpaquePointer

    /// Throws `xen-unavailable` outside Xen.
    public init() throws(SluiceError) {
        guard let handle = sluice_xen_watch_domains() else {
            throw SluiceError(.xenUnavailable, "cannot watch xenstore for domains: this is not a Xen domain")
        }
        self.handle = handle
    }

    deinit { sluice_xen_watch_close(handle) }

    /// Waits until a domain appeared or went away, or `timeoutMilliseconds` passed (negative: no limit); returns
    /// whether one did. Blocks the calling thread.
    public func wait(timeoutMilliseconds: Int32) -> Bool {
        let descriptor = FileDescriptor(rawValue: sluice_xen_watch_fd(handle))
        if sluice_xen_watch_drain(handle) > 0 { return true }
        guard (try? Readiness.wait(descriptor, timeoutMilliseconds: timeoutMilliseconds).first) == true else {
            return false
        }
        return sluice_xen_watch_drain(handle) > 0
    }
}
