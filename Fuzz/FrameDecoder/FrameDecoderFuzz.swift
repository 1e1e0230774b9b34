// libFuzzer target for the frame decoder. Built by `make fuzz` together with SluiceWire's sources in one module
// (swiftc -sanitize=fuzzer,address -parse-as-library), so no SwiftPM plumbing is involved.
//
// Invariants checked on every input, in every direction:
// - decoding never traps (ASan and Swift's runtime checks turn a bug into a crash libFuzzer reports);
// - a decoded message re-encodes, and the re-encoded frame decodes to the same message;
// - stream decoding agrees with datagram decoding on where the frame ends.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrameDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    for direction in Direction.allCases {
        let decoder = FrameDecoder(direction: direction)
        let message: Message
        do {
            message = try decoder.decode(datagram: input)
        } catch {
            // A datagram error must also be a stream error or a need for more bytes, never a different frame.
            if case .frame(_, let consumed)? = try? decoder.decode(from: input) {
                precondition(consumed < size, "stream decoding accepted what datagram decoding refused")
            }
            continue
        }
        let encoded: [UInt8]
        do {
            encoded = try FrameEncoder(direction: direction).encode(message)
        } catch {
            preconditionFailure("a decoded \(message.kind) did not re-encode: \(error)")
        }
        let again = try? decoder.decode(datagram: encoded)
        precondition(again == message, "re-encoded \(message.kind) decoded differently")
        if case .frame(let streamed, let consumed)? = try? decoder.decode(from: input) {
            precondition(streamed == message && consumed == size, "stream and datagram decoding disagree")
        } else {
            preconditionFailure("stream decoding refused what datagram decoding accepted")
        }
    }
    return 0
}
