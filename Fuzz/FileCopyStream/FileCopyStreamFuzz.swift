// libFuzzer target for the file-copy receiver's archive stream (`FileCopyArchive.Reader`), built by `make fuzz` with
// the example's archive sources in one module.
//
// Invariants on every input:
// - reading never traps;
// - the same bytes give the same events and the same refusal whether they arrive whole or in small pieces;
// - every accepted name passes the name check, every file's data adds up to its size, and the entry and byte
//   limits hold;
// - the accepted events, encoded again, are exactly the bytes that were read.

/// Feeds `input` in pieces of `piece` bytes; returns the events (a file's data joined) and the refusal, if any.
func read(_ input: [UInt8], piece: Int) -> (events: [FileCopyArchive.Event], refusal: FileCopyArchive.Refusal?) {
    var reader = FileCopyArchive.Reader(maxBytes: 1_000, maxEntries: 20)
    var events: [FileCopyArchive.Event] = []
    var start = 0
    do throws(FileCopyArchive.Refusal) {
        while start < input.count && !reader.ended {
            reader.append(input[start..<min(start + piece, input.count)])
            start += piece
            while let event = try reader.next() {
                if case .data(let more) = event, case .data(let earlier)? = events.last {
                    events[events.count - 1] = .data(earlier + more)
                } else {
                    events.append(event)
                }
            }
        }
        if !reader.ended { try reader.finish() }
        return (events, nil)
    } catch {
        return (events, error)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFileCopyStream(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let whole = read(input, piece: max(input.count, 1))
    let pieces = read(input, piece: 3)
    precondition(
        whole.refusal?.kind == pieces.refusal?.kind,
        "\(String(describing: whole.refusal)) vs \(String(describing: pieces.refusal))")
    // A refusal may come before a file's last bytes are returned as data when they arrive in pieces; compare the
    // events both readings returned in full.
    if whole.refusal == nil { precondition(whole.events == pieces.events, "events depend on how the bytes arrive") }

    var encoded = whole.events.isEmpty ? [] : FileCopyArchive.magic
    var entries = 0
    var total: UInt64 = 0
    var expectedData: UInt64 = 0
    for event in whole.events {
        switch event {
        case .directory(let parts, let mode):
            precondition(expectedData == 0, "a record inside a file's data")
            entries += 1
            encoded += FileCopyArchive.directoryRecord(checked(parts), mode: mode)
        case .file(let parts, let mode, let size):
            precondition(expectedData == 0, "a record inside a file's data")
            entries += 1
            total += size
            expectedData = size
            encoded += FileCopyArchive.fileHeader(checked(parts), mode: mode, size: size)
        case .data(let bytes):
            precondition(UInt64(bytes.count) <= expectedData, "more data than the file's size")
            expectedData -= UInt64(bytes.count)
            encoded += bytes
        case .symlink(let parts, let target):
            precondition(expectedData == 0, "a record inside a file's data")
            precondition(FileCopyArchive.symlinkStaysInside(components: parts, target: target))
            entries += 1
            encoded +=
                [FileCopyArchive.symlink] + FileCopyArchive.little(UInt16(checked(parts).utf8.count))
                + Array(parts.joined(separator: "/").utf8) + FileCopyArchive.little(UInt16(target.count)) + target
        case .end:
            precondition(expectedData == 0, "the end record inside a file's data")
            encoded += [FileCopyArchive.end]
        }
    }
    precondition(entries <= 20 && total <= 1_000, "a limit did not hold")
    precondition(input.starts(with: encoded), "the events do not encode back to the bytes that were read")
    if whole.refusal == nil { precondition(whole.events.last == .end, "accepted without an end record") }
    return 0
}

/// The name of an accepted entry, after checking that it passes the receiver's name check.
func checked(_ parts: [String]) -> String {
    let name = parts.joined(separator: "/")
    guard case .success(let again) = FileCopyArchive.components(of: Array(name.utf8)), again == parts else {
        preconditionFailure("an accepted name that the name check refuses: \(name)")
    }
    return name
}
