extension FileCopyArchive {
    /// Why a stream was refused: a stable kind (for tests and the fuzzer) and a sentence for the sender.
    public struct Refusal: Error, Equatable, Sendable {
        public enum Kind: String, Sendable {
            case notAnArchive, entryType, name, missingParent, duplicateName, tooManyEntries, tooManyBytes
            case symlinkOutside, truncated
        }
        public var kind: Kind
        public var reason: String

        public init(_ kind: Kind, _ reason: String) {
            self.kind = kind
            self.reason = reason
        }
    }

    /// What the reader found in the stream, in order. A file's bytes follow its header as one or more `data` events.
    public enum Event: Equatable, Sendable {
        case directory(components: [String], mode: UInt32)
        case file(components: [String], mode: UInt32, size: UInt64)
        case data([UInt8])
        case symlink(components: [String], target: [UInt8])
        case end
    }

    /// The receiver's side of the stream, with no I/O: bytes go in with `append`, events come out of `next()`.
    ///
    /// Everything the receiver must not trust is checked here, before an event is returned: names (see
    /// `components(of:)`), entry types, that a name's parent directory came earlier in the stream, duplicate names,
    /// symlinks that would leave the tree, and the entry and byte limits. It keeps at most one record header plus the
    /// bytes appended but not yet returned; a file's contents pass through as `data` events and are never gathered.
    public struct Reader: Sendable {
        public let maxBytes: UInt64
        public let maxEntries: Int
        public private(set) var entries = 0
        public private(set) var bytes: UInt64 = 0
        public private(set) var ended = false

        private var buffer: [UInt8] = []
        private var position = 0
        private var sawMagic = false
        private var fileRemaining: UInt64 = 0
        private var directories: Set<[String]> = [[]]
        private var names: Set<[String]> = []

        public init(maxBytes: UInt64, maxEntries: Int) {
            self.maxBytes = maxBytes
            self.maxEntries = maxEntries
        }

        /// Adds bytes read from the stream. Bytes after the end record are ignored by `next()` and refused by
        /// `finish()`.
        public mutating func append(_ bytes: some Collection<UInt8>) {
            if position > 0 && position == buffer.count {
                buffer.removeAll(keepingCapacity: true)
                position = 0
            } else if position > 65_536 {
                buffer.removeFirst(position)
                position = 0
            }
            buffer.append(contentsOf: bytes)
        }

        /// The next event, or nil when more bytes are needed (or the end record was read).
        public mutating func next() throws(Refusal) -> Event? {
            if ended { return nil }
            if !sawMagic {
                guard available >= magic.count else {
                    if !buffer[position...].elementsEqual(magic.prefix(available)) { throw notAnArchive }
                    return nil
                }
                guard buffer[position..<position + magic.count].elementsEqual(magic) else { throw notAnArchive }
                position += magic.count
                sawMagic = true
            }
            if fileRemaining > 0 {
                guard available > 0 else { return nil }
                let count = Int(min(UInt64(available), fileRemaining))
                let chunk = Array(buffer[position..<position + count])
                position += count
                fileRemaining -= UInt64(count)
                return .data(chunk)
            }
            return try record()
        }

        /// Called when the stream has ended: refuses a stream cut off before its end record, or with bytes after it.
        public func finish() throws(Refusal) {
            guard ended else { throw Refusal(.truncated, "the stream ended in the middle of the archive") }
            guard available == 0 else { throw Refusal(.truncated, "bytes after the end record") }
        }

        private var available: Int { buffer.count - position }
        private var notAnArchive: Refusal { Refusal(.notAnArchive, "not a file-copy stream") }

        /// Parses one whole record at `position`, or returns nil (consuming nothing) if it has not all arrived.
        private mutating func record() throws(Refusal) -> Event? {
            var cursor = Cursor(bytes: buffer, at: position)
            guard let type = cursor.byte() else { return nil }
            if type == end {
                position = cursor.at
                ended = true
                return .end
            }
            guard type == directory || type == file || type == symlink else {
                throw Refusal(
                    .entryType, "an entry of type \(type) (only directories, files and symlinks are accepted)")
            }
            guard let nameLength = cursor.integer(UInt16.self) else { return nil }
            guard let name = cursor.take(Int(nameLength)) else { return nil }
            let parts: [String]
            switch components(of: name) {
            case .success(let value): parts = value
            case .failure(let error): throw Refusal(.name, "a refused name (\(error))")
            }
            let event: Event
            switch type {
            case directory:
                guard let mode = cursor.integer(UInt32.self) else { return nil }
                event = .directory(components: parts, mode: mode)
            case file:
                guard let mode = cursor.integer(UInt32.self), let size = cursor.integer(UInt64.self) else { return nil }
                guard size <= maxBytes - bytes else { throw Refusal(.tooManyBytes, "more than \(maxBytes) bytes") }
                event = .file(components: parts, mode: mode, size: size)
            default:
                guard let targetLength = cursor.integer(UInt16.self) else { return nil }
                guard let target = cursor.take(Int(targetLength)) else { return nil }
                guard symlinkStaysInside(components: parts, target: target) else {
                    throw Refusal(.symlinkOutside, "a symlink that leaves the copied tree")
                }
                event = .symlink(components: parts, target: target)
            }
            // The whole record is here: check it against what came before, then consume it.
            guard directories.contains(Array(parts.dropLast())) else {
                throw Refusal(.missingParent, "an entry whose directory the stream did not create")
            }
            guard !names.contains(parts) else { throw Refusal(.duplicateName, "a name that came twice") }
            guard entries < maxEntries else { throw Refusal(.tooManyEntries, "more than \(maxEntries) entries") }
            entries += 1
            names.insert(parts)
            switch event {
            case .directory: directories.insert(parts)
            case .file(_, _, let size):
                bytes += size
                fileRemaining = size
            default: break
            }
            position = cursor.at
            return event
        }
    }

    /// Reads little-endian fields from a buffer without running past its end.
    private struct Cursor {
        let bytes: [UInt8]
        var at: Int

        mutating func take(_ count: Int) -> [UInt8]? {
            guard bytes.count - at >= count else { return nil }
            defer { at += count }
            return Array(bytes[at..<at + count])
        }

        mutating func byte() -> UInt8? { take(1)?[0] }

        mutating func integer<T: FixedWidthInteger>(_ type: T.Type) -> T? {
            guard let raw = take(MemoryLayout<T>.size) else { return nil }
            return raw.reversed().reduce(T.zero) { $0 << 8 | T($1) }
        }
    }
}
