// libFuzzer target for the request validator: service calls, service names and arguments, domain names and
// targets, as a domain's request carries them. Built by `make fuzz` with SluiceWire's sources in one module.
//
// Invariants on every input:
// - validation never traps, and refuses with a 2xx name code;
// - an accepted name holds only its charset (no `$`, no `/`, no shell metacharacter, no NUL) within its length
//   limit, and parses again to the same value;
// - `SERVICE+ARG` splits at the first `+` and joins back to the input.

let serviceBytes = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-".utf8))
let argumentBytes = serviceBytes.union([UInt8(ascii: "+")])
let targetBytes = serviceBytes.union(Array(":@".utf8))

func refusedWithNameCode(_ error: SluiceError) {
    precondition((200...204).contains(error.code.rawValue), "a name refused with \(error.code)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzServiceNames(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        let call = try ServiceCall(parsing: text)
        precondition(call.fullName.utf8.count <= NameLimits.maxServiceCallBytes)
        precondition(call.service.rawValue.utf8.allSatisfy(serviceBytes.contains))
        precondition(call.argument.rawValue.utf8.allSatisfy(argumentBytes.contains))
        precondition(
            call.fullName == text || call.fullName == text + "+" || text == call.service.rawValue,
            "\(text) parsed as \(call.fullName)")
        precondition((try? ServiceCall(parsing: call.fullName)) == call)
    } catch {
        refusedWithNameCode(error)
    }
    do {
        let target = try TargetName(text)
        precondition(target.rawValue == text && text.utf8.allSatisfy(targetBytes.contains))
    } catch {
        refusedWithNameCode(error)
    }
    do {
        let domain = try DomainName(text)
        precondition(domain.rawValue == text && text.utf8.count <= NameLimits.maxDomainNameBytes)
        precondition(text.utf8.allSatisfy(serviceBytes.contains))
    } catch {
        refusedWithNameCode(error)
    }
    do {
        let argument = try ServiceArgument(text)
        precondition(argument.rawValue == text && text.utf8.allSatisfy(argumentBytes.contains))
    } catch {
        refusedWithNameCode(error)
    }
    return 0
}
