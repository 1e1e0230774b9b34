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
        let bytes = line.utf8
        var index = bytes.startIndex
        var column = 1
        var fieldStart: Substring.UTF8View.Index?
        var fieldColumn = 0
        while index != bytes.endIndex {
            if Self.isSpace(bytes[index]) {
                if let start = fieldStart {
                    fields.append(Field(text: String(line[start..<index]), column: fieldColumn))
                    fieldStart = nil
                }
            } else if fieldStart == nil {
                fieldStart = index
                fieldColumn = column
            }
            index = bytes.index(after: index)
            column += 1
        }
        if let start = fieldStart { fields.append(Field(text: String(line[start..<index]), column: fieldColumn)) }
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
