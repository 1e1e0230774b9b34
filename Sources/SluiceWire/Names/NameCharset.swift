/// Byte classes of qrexec's name charsets. Sluice rejects a byte outside the class where qrexec rewrites it to `_`.
enum NameCharset {
    @inline(__always)
    static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
    }

    @inline(__always)
    static func isLetter(_ byte: UInt8) -> Bool { (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) }

    /// `[A-Za-z0-9._-]`: service names and domain names.
    @inline(__always)
    static func isNameByte(_ byte: UInt8) -> Bool {
        isAlphanumeric(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }

    /// `[A-Za-z0-9._+-]`: service arguments.
    @inline(__always)
    static func isArgumentByte(_ byte: UInt8) -> Bool { isNameByte(byte) || byte == UInt8(ascii: "+") }

    /// `[A-Za-z0-9._:@-]`: requested targets (`@dispvm:work`, `uuid:...`).
    @inline(__always)
    static func isTargetByte(_ byte: UInt8) -> Bool {
        isNameByte(byte) || byte == UInt8(ascii: "@") || byte == UInt8(ascii: ":")
    }

    /// A printable rendering of an untrusted name for error messages: at most 64 bytes, other bytes as `\xHH`.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for (index, byte) in text.utf8.enumerated() {
            if index == 64 {
                out += "..."
                break
            }
            if byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                out += "\\x" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out + "\""
    }
}
