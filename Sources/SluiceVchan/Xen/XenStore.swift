internal import CXenVchan
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
