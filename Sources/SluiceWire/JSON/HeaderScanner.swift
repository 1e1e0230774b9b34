/// A single pass over the raw header bytes before jansson sees them. It rejects, with a precise code, what must
/// never reach the parser: nesting deeper than `WireLimits.maxHeaderDepth` (jansson's own limit is 2048, and its
/// parser recurses) and raw NUL bytes. Everything else (syntax, UTF-8, escapes, duplicates) is jansson's job.
enum HeaderScanner {
    static func check(_ header: UnsafeRawBufferPointer, maxDepth: Int) throws(SluiceError) {
        var depth = 0
        var inString = false
        var escaped = false
        for byte in header {
            if byte == 0 { throw SluiceError(.nulCharacter, "the header holds a NUL byte") }
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                if depth > maxDepth {
                    throw SluiceError(.headerTooDeep, "the header nests deeper than \(maxDepth) levels")
                }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
            default:
                break
            }
        }
    }
}
