/// The file-copy example's stream: what `sluice-example-file-send` writes and `sluice-example-file-receive` reads.
///
/// `SLCP1\n`, then records, then an end record. All integers are little-endian.
///
/// | record | bytes |
/// |---|---|
/// | directory | `d`, u16 name length, name, u32 mode |
/// | file | `f`, u16 name length, name, u32 mode, u64 size, the bytes |
/// | symlink | `l`, u16 name length, name, u16 target length, target |
/// | end | `e` |
///
/// Names are relative paths with `/` between components. The receiver trusts nothing in the stream.
public enum FileCopyArchive {
    public static let magic: [UInt8] = Array("SLCP1\n".utf8)
    public static let directory = UInt8(ascii: "d")
    public static let file = UInt8(ascii: "f")
    public static let symlink = UInt8(ascii: "l")
    public static let end = UInt8(ascii: "e")

    /// Longest whole name, and longest component (as Linux's PATH_MAX and NAME_MAX).
    public static let maxNameBytes = 4_095
    public static let maxComponentBytes = 255

    public static func little<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    public static func directoryRecord(_ name: String, mode: UInt32) -> [UInt8] {
        [directory] + little(UInt16(name.utf8.count)) + Array(name.utf8) + little(mode)
    }

    /// The header of a file record; its `size` bytes follow.
    public static func fileHeader(_ name: String, mode: UInt32, size: UInt64) -> [UInt8] {
        [file] + little(UInt16(name.utf8.count)) + Array(name.utf8) + little(mode) + little(size)
    }

    public static func symlinkRecord(_ name: String, target: String) -> [UInt8] {
        [symlink] + little(UInt16(name.utf8.count)) + Array(name.utf8) + little(UInt16(target.utf8.count))
            + Array(target.utf8)
    }

    public enum NameError: Error, Equatable {
        case empty, tooLong, absolute, emptyComponent, dotComponent, controlCharacter, componentTooLong, notUTF8
    }

    /// Checks a received name: relative, no `.` or `..` component, no empty component, no control character or
    /// NUL, valid UTF-8 (so that the path created is the name sent, byte for byte), within the length limits. Returns
    /// its components.
    public static func components(of name: [UInt8]) -> Result<[String], NameError> {
        if name.isEmpty { return .failure(.empty) }
        if name.count > maxNameBytes { return .failure(.tooLong) }
        if name.first == UInt8(ascii: "/") { return .failure(.absolute) }
        if name.contains(where: { $0 < 0x20 || $0 == 0x7F }) { return .failure(.controlCharacter) }
        if String(validating: name, as: UTF8.self) == nil { return .failure(.notUTF8) }
        var parts: [String] = []
        for part in name.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            if part.isEmpty { return .failure(.emptyComponent) }
            if part.count > maxComponentBytes { return .failure(.componentTooLong) }
            if part.elementsEqual(Array(".".utf8)) || part.elementsEqual(Array("..".utf8)) {
                return .failure(.dotComponent)
            }
            parts.append(String(decoding: part, as: UTF8.self))
        }
        return .success(parts)
    }

    /// Whether a symlink at `components` pointing to `target` stays inside the copied tree: a relative target whose
    /// `..` steps never climb above the tree's root, in valid UTF-8.
    public static func symlinkStaysInside(components: [String], target: [UInt8]) -> Bool {
        guard !target.isEmpty, target.first != UInt8(ascii: "/"), target.count <= maxNameBytes,
            !target.contains(where: { $0 < 0x20 || $0 == 0x7F }), String(validating: target, as: UTF8.self) != nil
        else { return false }
        var depth = components.count - 1  // the link's directory, counted from the root
        for part in target.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            if part.elementsEqual(Array("..".utf8)) {
                depth -= 1
                if depth < 0 { return false }
            } else if !part.elementsEqual(Array(".".utf8)) {
                depth += 1
            }
        }
        return true
    }
}
