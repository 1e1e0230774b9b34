public import SluicePolicy
public import SluiceWire

/// The local backend's domain ids: `dom0` is 0 and the other domains follow in inventory order, so the daemon,
/// the host launcher and the agents agree without talking. (On Xen the ids come from xenstore.)
public struct DomainDirectory: Sendable {
    public let names: [DomainName]
    private let ids: [String: DomainID]

    public init(_ inventory: Inventory) {
        var names = [DomainName.admin]
        for domain in inventory.domains where domain.name != "dom0" {
            if let name = try? DomainName(domain.name) { names.append(name) }
        }
        self.names = names
        var ids: [String: DomainID] = [:]
        for (index, name) in names.enumerated() { ids[name.rawValue] = DomainID(rawValue: UInt16(index)) }
        self.ids = ids
    }

    public func id(of name: String) -> DomainID? { ids[name] }

    public func name(of id: DomainID) -> DomainName? {
        Int(id.rawValue) < names.count ? names[Int(id.rawValue)] : nil
    }
}
