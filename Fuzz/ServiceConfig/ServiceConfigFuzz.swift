// libFuzzer target for the service configuration parser (rpc-config files, qrexec's TOML subset). Built by
// `make fuzz` with SluiceWire's sources and SluiceRegistry's Configuration folder in one module.
//
// Invariants on every input:
// - parsing never traps, and refuses only with `service-config-invalid` naming the file;
// - an accepted file yields limits that are never negative, and parses again to the same configuration.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzServiceConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        let configuration = try ServiceConfiguration(parsing: text, file: "fuzz")
        for limit in [configuration.timeoutSeconds, configuration.maxConcurrent, configuration.maxOutputBytes] {
            precondition((limit ?? 0) >= 0, "a negative limit was accepted")
        }
        precondition((try? ServiceConfiguration(parsing: text, file: "fuzz")) == configuration)
    } catch {
        precondition(error.code == .serviceConfigInvalid, "refused with \(error.code)")
        precondition(error.message.hasPrefix("fuzz"), "an error that does not name the file")
    }
    return 0
}
