/// A policy line split on whitespace (as Python's `str.split()` does for ASCII), with each field's 1-based
/// column, so errors can point at the field that is wrong.
struct LineFields {
    struct Field {
        var text: String
        var column: Int
    }

    var fields: [Field]

    init(_ line: Substring) {
        fields = []
        var current: [UInt8] = []
        var start = 0
        for (offset, byte) in line.utf8.enumerated() {
            if Self.isSpace(byte) {
                if !current.isEmpty {
                    fields.append(Field(text: String(decoding: current, as: UTF8.self), column: start + 1))
                    current.removeAll(keepingCapacity: true)
                }
            } else {
                if current.isEmpty { start = offset }
                current.append(byte)
            }
        }
        if !current.isEmpty { fields.append(Field(text: String(decoding: current, as: UTF8.self), column: start + 1)) }
    }

    static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0B || byte == 0x0C || byte == 0x0D
    }

    /// The line without leading and trailing whitespace.
    static func stripped(_ line: Substring) -> Substring {
        let bytes = line.utf8
        guard let first = bytes.firstIndex(where: { !isSpace($0) }) else { return line[line.endIndex...] }
        let last = bytes.lastIndex(where: { !isSpace($0) })!
        return line[first...last]
    }
}
