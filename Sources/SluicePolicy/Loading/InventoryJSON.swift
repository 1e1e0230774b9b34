import Foundation

extension Inventory {
    /// Reads the `--system` JSON: `{"domains": [{"name": ..., "type": ..., "tags": [...], "uuid": ...,
    /// "template_for_dispvms": bool, "default_dispvm": name-or-null, "power_state": "Running"|"Halted"|...,
    /// "internal": bool, "relayvm": name, "transport_rpc": service, "user": name, "uid": number}]}` (`user` and
    /// `uid`: who the domain's processes run as on the local backend). Missing optional fields take these
    /// defaults: type `AppVM`, no tags, no uuid, not a disposable template, no default disposable, `Halted`,
    /// not internal, no relay.
    public init(json: [UInt8]) throws(PolicyError) {
        struct File: Decodable {
            var domains: [Entry]
        }
        struct Entry: Decodable {
            var name: String
            var type: String?
            var tags: [String]?
            var uuid: String?
            var template_for_dispvms: Bool?
            var default_dispvm: String?
            var power_state: String?
            var `internal`: Bool?
            var relayvm: String?
            var transport_rpc: String?
            var user: String?
            var uid: UInt32?
        }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: Data(json))
        } catch {
            throw PolicyError(path: "system", message: "invalid system JSON: \(error)")
        }
        self.init(
            domains: file.domains.map { entry in
                Domain(
                    name: entry.name, type: entry.type ?? "AppVM", tags: entry.tags ?? [], uuid: entry.uuid,
                    templateForDispVMs: entry.template_for_dispvms ?? false, defaultDispVM: entry.default_dispvm,
                    powerState: entry.power_state ?? "Halted", isInternal: entry.internal ?? false,
                    relayVM: entry.relayvm,
                    transportRPC: entry.transport_rpc, localUser: entry.user, localUID: entry.uid)
            })
    }
}

extension Inventory {
    /// The inventory in the `--system` format `init(json:)` reads, so the two never drift apart.
    public var json: JSONValue {
        let entries = domains.map { domain -> JSONValue in
            var object: [String: JSONValue] = [
                "name": .string(domain.name), "type": .string(domain.type),
                "tags": .array(domain.tags.map(JSONValue.string)),
                "template_for_dispvms": .bool(domain.templateForDispVMs), "power_state": .string(domain.powerState),
                "internal": .bool(domain.isInternal),
                "default_dispvm": domain.defaultDispVM.map(JSONValue.string) ?? .null,
            ]
            if let uuid = domain.uuid { object["uuid"] = .string(uuid) }
            if let relay = domain.relayVM { object["relayvm"] = .string(relay) }
            if let transport = domain.transportRPC { object["transport_rpc"] = .string(transport) }
            if let user = domain.localUser { object["user"] = .string(user) }
            if let uid = domain.localUID { object["uid"] = .int(Int(uid)) }
            return .object(object)
        }
        return .object(["domains": .array(entries)])
    }
}
