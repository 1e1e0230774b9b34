internal import CJansson

/// A parsed header object, read field by field into typed values. It owns the jansson tree.
///
/// Parsing uses `json_loadb` with `JSON_REJECT_DUPLICATES` at every level, no `JSON_DECODE_ANY` and no
/// `JSON_ALLOW_NUL`. Every accessor counts the fields it consumed, and `finish()` fails with `unknown-field`
/// (118) if the object holds any other: unknown fields are rejected, not ignored, so that two readers can
/// never disagree about what a header says.
struct HeaderReader: ~Copyable {
    private let object: UnsafeMutablePointer<json_t>
    private let ownsTree: Bool
    private let context: String
    private var consumed = 0
    /// The keys the accessors asked for, to name the unknown one in an error.
    private var requested: [StaticString] = []

    /// Parses `bytes` as one JSON object.
    init(parsing bytes: UnsafeRawBufferPointer, maxDepth: Int) throws(SluiceError) {
        try HeaderScanner.check(bytes, maxDepth: maxDepth)
        var error = json_error_t()
        guard let base = bytes.baseAddress,
            let root = json_loadb(
                base.assumingMemoryBound(to: CChar.self), bytes.count, Int(JSON_REJECT_DUPLICATES), &error)
        else {
            throw Self.mapParseError(&error, empty: bytes.isEmpty)
        }
        guard root.pointee.type == JSON_OBJECT else {
            // Named before the tree is freed: AddressSanitizer found the name read after json_decref.
            let error = SluiceError(.headerNotObject, "the header is a JSON \(Self.typeName(root)), not an object")
            json_decref(root)
            throw error
        }
        self.object = root
        self.ownsTree = true
        self.context = ""
    }

    private init(borrowing object: UnsafeMutablePointer<json_t>, context: String) {
        self.object = object
        self.ownsTree = false
        self.context = context
    }

    deinit {
        if ownsTree { json_decref(object) }
    }

    // MARK: Fields

    mutating func string(_ key: StaticString) throws(SluiceError) -> String {
        guard let value = try optionalString(key) else { throw missing(key) }
        return value
    }

    mutating func optionalString(_ key: StaticString) throws(SluiceError) -> String? {
        guard let value = take(key) else { return nil }
        guard value.pointee.type == JSON_STRING, let chars = json_string_value(value) else {
            throw wrongType(key, expected: "a string", found: value)
        }
        let length = json_string_length(value)
        return chars.withMemoryRebound(to: UInt8.self, capacity: length) {
            String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
        }
    }

    mutating func integer(_ key: StaticString, max: UInt64) throws(SluiceError) -> UInt64 {
        guard let value = try optionalInteger(key, max: max) else { throw missing(key) }
        return value
    }

    mutating func optionalInteger(_ key: StaticString, max: UInt64) throws(SluiceError) -> UInt64? {
        guard let value = take(key) else { return nil }
        guard value.pointee.type == JSON_INTEGER else {
            throw wrongType(key, expected: "an integer", found: value)
        }
        let number = json_integer_value(value)
        guard number >= 0, UInt64(number) <= max else {
            throw SluiceError(.valueOutOfRange, "field \(qualified(key)) is \(number); it must be 0...\(max)")
        }
        return UInt64(number)
    }

    /// Reads a nested object with `body`, which must consume all of its fields.
    mutating func object<T>(
        _ key: StaticString,
        _ body: (inout HeaderReader) throws(SluiceError) -> T
    ) throws(SluiceError) -> T {
        guard let value = take(key) else { throw missing(key) }
        guard value.pointee.type == JSON_OBJECT else {
            throw wrongType(key, expected: "an object", found: value)
        }
        var nested = HeaderReader(borrowing: value, context: context + key.description + ".")
        let result = try body(&nested)
        try nested.finish()
        return result
    }

    /// Fails with `unknown-field` if the object holds a field no accessor consumed.
    func finish() throws(SluiceError) {
        guard json_object_size(object) != consumed else { return }
        throw SluiceError(.unknownField, "the header has an unknown field \(unknownKeyDescription())")
    }

    // MARK: Helpers

    private mutating func take(_ key: StaticString) -> UnsafeMutablePointer<json_t>? {
        requested.append(key)
        let found = key.withUTF8Buffer { name in
            name.withMemoryRebound(to: CChar.self) { json_object_getn(object, $0.baseAddress, name.count) }
        }
        guard let value = found else { return nil }
        consumed += 1
        return value
    }

    private func qualified(_ key: StaticString) -> String { "\"\(context)\(key.description)\"" }

    private func missing(_ key: StaticString) -> SluiceError {
        SluiceError(.missingField, "the header lacks the field \(qualified(key))")
    }

    private func wrongType(_ key: StaticString, expected: String, found: UnsafeMutablePointer<json_t>) -> SluiceError {
        SluiceError(.wrongFieldType, "field \(qualified(key)) must be \(expected), not a \(Self.typeName(found))")
    }

    /// The first key of the object that no accessor took, for the error message.
    private func unknownKeyDescription() -> String {
        let known = Set(requested.map(\.description))
        var iterator = json_object_iter(object)
        while let current = iterator {
            if let key = json_object_iter_key(current) {
                let name = String(cString: key)
                if !known.contains(name) { return NameCharset.quoted(context + name) }
            }
            iterator = json_object_iter_next(object, current)
        }
        return "(unnamed)"
    }

    private static func typeName(_ value: UnsafeMutablePointer<json_t>) -> String {
        switch value.pointee.type {
        case JSON_OBJECT: "object"
        case JSON_ARRAY: "array"
        case JSON_STRING: "string"
        case JSON_INTEGER: "integer"
        case JSON_REAL: "real number"
        case JSON_TRUE, JSON_FALSE: "boolean"
        default: "null"
        }
    }

    private static func mapParseError(_ error: inout json_error_t, empty: Bool) -> SluiceError {
        let text = withUnsafeBytes(of: &error.text) { raw -> String in
            let bytes = raw.prefix(while: { $0 != 0 })
            return String(decoding: bytes.prefix(Int(JSON_ERROR_TEXT_LENGTH) - 1), as: UTF8.self)
        }
        let detail = "\(text) at byte \(error.position)"
        switch json_error_code(&error) {
        case json_error_duplicate_key: return SluiceError(.duplicateKey, "the header repeats a key: \(detail)")
        case json_error_invalid_utf8: return SluiceError(.invalidUTF8, "the header is not valid UTF-8: \(detail)")
        case json_error_null_character, json_error_null_byte_in_key:
            return SluiceError(.nulCharacter, "the header holds a NUL character: \(detail)")
        case json_error_stack_overflow: return SluiceError(.headerTooDeep, "the header nests too deep: \(detail)")
        default:
            // A lone surrogate escape is jansson's invalid_syntax, but it is a UTF-8 (encoding) error for us.
            if text.contains("invalid Unicode") {
                return SluiceError(.invalidUTF8, "the header holds an invalid Unicode escape: \(detail)")
            }
            return SluiceError(.invalidJSON, empty ? "the header is empty" : "the header is not valid JSON: \(detail)")
        }
    }
}
