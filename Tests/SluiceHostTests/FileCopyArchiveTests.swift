import FileCopyArchive
import Testing

/// The file-copy example's stream reader, without I/O: what the receiver accepts and refuses, however the bytes
/// arrive. The fuzzer (`Fuzz/FileCopyStream`) checks the same invariants on random input.
@Suite("file-copy archive reader")
struct FileCopyArchiveTests {
    static func read(_ input: [UInt8], piece: Int = 1 << 20) -> ([FileCopyArchive.Event], FileCopyArchive.Refusal?) {
        var reader = FileCopyArchive.Reader(maxBytes: 100, maxEntries: 4)
        var events: [FileCopyArchive.Event] = []
        var start = 0
        do throws(FileCopyArchive.Refusal) {
            while start < input.count {
                reader.append(input[start..<min(start + piece, input.count)])
                start += piece
                while let event = try reader.next() { events.append(event) }
            }
            try reader.finish()
            return (events, nil)
        } catch {
            return (events, error)
        }
    }

    @Test("a tree arrives as the same events whole or one byte at a time; file data is never gathered")
    func tree() {
        let stream =
            FileCopyArchive.magic + FileCopyArchive.directoryRecord("d", mode: 0o755)
            + FileCopyArchive.fileHeader("d/f", mode: 0o644, size: 3) + [1, 2, 3]
            + FileCopyArchive.symlinkRecord("d/l", target: "f") + [FileCopyArchive.end]
        let (whole, refusal) = Self.read(stream)
        #expect(refusal == nil)
        #expect(
            whole == [
                .directory(components: ["d"], mode: 0o755), .file(components: ["d", "f"], mode: 0o644, size: 3),
                .data([1, 2, 3]), .symlink(components: ["d", "l"], target: Array("f".utf8)), .end,
            ])
        let (bytewise, again) = Self.read(stream, piece: 1)
        #expect(again == nil)
        #expect(
            bytewise.filter { if case .data = $0 { false } else { true } } == whole.filter { $0 != .data([1, 2, 3]) })
        #expect(bytewise.filter { $0 == .data([1]) || $0 == .data([2]) || $0 == .data([3]) }.count == 3)
    }

    @Test(
        "each hostile stream is refused with its own kind",
        arguments: [
            ("not an archive", Array("SLCP2\n".utf8), FileCopyArchive.Refusal.Kind.notAnArchive),
            ("a device", FileCopyArchive.magic + [UInt8(ascii: "c"), 1, 0, UInt8(ascii: "x")], .entryType),
            ("a parent step", FileCopyArchive.magic + FileCopyArchive.directoryRecord("..", mode: 0), .name),
            (
                "a missing parent", FileCopyArchive.magic + FileCopyArchive.directoryRecord("a/b", mode: 0),
                .missingParent
            ),
            (
                "a duplicate",
                FileCopyArchive.magic + FileCopyArchive.directoryRecord("a", mode: 0)
                    + FileCopyArchive.symlinkRecord("a", target: "b"), .duplicateName
            ),
            (
                "too many bytes", FileCopyArchive.magic + FileCopyArchive.fileHeader("f", mode: 0, size: 101),
                .tooManyBytes
            ),
            (
                "too many entries",
                FileCopyArchive.magic + (1...5).flatMap { FileCopyArchive.directoryRecord("d\($0)", mode: 0) },
                .tooManyEntries
            ),
            ("a link out", FileCopyArchive.magic + FileCopyArchive.symlinkRecord("l", target: "../x"), .symlinkOutside),
            ("cut off", FileCopyArchive.magic + FileCopyArchive.fileHeader("f", mode: 0, size: 9) + [1], .truncated),
            ("bytes after the end", FileCopyArchive.magic + [FileCopyArchive.end, 0], .truncated),
            // Found by the fuzzer: names that are not UTF-8 were decoded with replacement characters, so two
            // different names became one path (and the path differed from the name sent).
            (
                "a name that is not UTF-8",
                FileCopyArchive.magic + [FileCopyArchive.directory, 3, 0, UInt8(ascii: "a"), 0x91, 0x9D, 0, 0, 0, 0],
                .name
            ),
            (
                "a link target that is not UTF-8",
                FileCopyArchive.magic + [FileCopyArchive.symlink, 1, 0, UInt8(ascii: "l"), 2, 0, 0xFF, 0xFE],
                .symlinkOutside
            ),
        ])
    func hostile(name: String, stream: [UInt8], kind: FileCopyArchive.Refusal.Kind) {
        for piece in [1, 3, 1 << 20] {
            let (_, refusal) = Self.read(stream, piece: piece)
            #expect(refusal?.kind == kind, "\(name), pieces of \(piece)")
        }
    }
}
