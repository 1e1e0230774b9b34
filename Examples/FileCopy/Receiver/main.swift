// sluice-example-file-receive: the example.FileCopy service (like qvm-copy's receiver). It unpacks the stream from
// sluice-example-file-send into INCOMING/<source-domain>/, where INCOMING is ~/Incoming unless the file
// SERVICE-FILE.conf beside the service says `incoming DIR` (it may also set `max-bytes N` and `max-files N`).
//
// It trusts nothing in the stream; FileCopyArchive.Reader checks it, with no I/O. It refuses `..`, absolute names,
// empty components, control characters, names that are not UTF-8, duplicates, symlinks that leave the tree, any
// entry type but directory, file and symlink, names whose parent the stream did not create, and anything over the
// size and file-count limits. Everything is written into a fresh staging directory first and moved into place only
// once the end record has arrived; on any refusal or a cut-off stream the staging directory is removed, so no
// partial file is left behind. Exit 0 on success, 1 on a refusal (the reason on stderr).
import FileCopyArchive

#if canImport(Glibc)
    import Glibc
#endif

struct Refusal: Error { var reason: String }

func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

func complain(_ text: String) {
    let line = Array((text + "\n").utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// Removes a directory tree without following symlinks.
func removeTree(_ path: String) {
    var info = stat()
    guard lstat(path, &info) == 0 else { return }
    if (info.st_mode & S_IFMT) == S_IFDIR {
        if let handle = opendir(path) {
            while let entry = readdir(handle) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) {
                    String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self)
                }
                if name != "." && name != ".." { removeTree(path + "/" + name) }
            }
            closedir(handle)
        }
        rmdir(path)
    } else {
        unlink(path)
    }
}

// Configuration: limits and destination.
var maxBytes: UInt64 = 1 << 30
var maxFiles = 10_000
var incoming = (environment("HOME") ?? "/tmp") + "/Incoming"
if let configuration = fopen(CommandLine.arguments[0] + ".conf", "r") {
    var line = [CChar](repeating: 0, count: 4_096)
    while fgets(&line, Int32(line.count), configuration) != nil {
        let text = String(decoding: line.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        guard words.count == 2 else { continue }
        switch words[0] {
        case "incoming": incoming = words[1]
        case "max-bytes": maxBytes = UInt64(words[1]) ?? maxBytes
        case "max-files": maxFiles = Int(words[1]) ?? maxFiles
        default: break
        }
    }
    fclose(configuration)
}

let source = environment("QREXEC_REMOTE_DOMAIN") ?? "unknown"
let destination = incoming + "/" + source
mkdir(incoming, 0o700)
mkdir(destination, 0o700)
let suffix = UInt32.random(in: 0...UInt32.max)
let staging = destination + "/.sluice-incoming-\(String(suffix, radix: 16))"
guard mkdir(staging, 0o700) == 0 else {
    complain("file-receive: cannot create \(staging)")
    exit(1)
}

var topLevel: [String] = []
var reader = FileCopyArchive.Reader(maxBytes: maxBytes, maxEntries: maxFiles)

/// Writes all of `bytes` to `fd`.
func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
    var written = 0
    while written < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
        guard n > 0 else { throw Refusal(reason: "cannot write a file") }
        written += n
    }
}

/// Reads stdin into the archive reader (which checks everything) and carries out each event in the staging directory.
@MainActor func receive() throws {
    var chunk = [UInt8](repeating: 0, count: 65_536)
    var openFile: Int32 = -1
    defer { if openFile >= 0 { close(openFile) } }
    while true {
        let n = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { break }
        reader.append(chunk[0..<n])
        while let event = try reader.next() {
            switch event {
            case .directory(let parts, let mode):
                if parts.count == 1 { topLevel.append(parts[0]) }
                let path = staging + "/" + parts.joined(separator: "/")
                guard mkdir(path, mode_t((mode & 0o777) | 0o700)) == 0 else {
                    throw Refusal(reason: "cannot create a directory")
                }
            case .file(let parts, let mode, let size):
                if parts.count == 1 { topLevel.append(parts[0]) }
                if openFile >= 0 { close(openFile) }
                // O_EXCL and O_NOFOLLOW: never write through something that already exists.
                let path = staging + "/" + parts.joined(separator: "/")
                openFile = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode_t(mode & 0o755))
                guard openFile >= 0 else { throw Refusal(reason: "cannot create a file") }
                if size == 0 {
                    close(openFile)
                    openFile = -1
                }
            case .data(let bytes):
                try writeAll(openFile, bytes)
            case .symlink(let parts, let target):
                if parts.count == 1 { topLevel.append(parts[0]) }
                let path = staging + "/" + parts.joined(separator: "/")
                guard symlink(String(decoding: target, as: UTF8.self), path) == 0 else {
                    throw Refusal(reason: "cannot create a symlink")
                }
            case .end:
                return
            }
        }
    }
    try reader.finish()
}

do {
    try receive()
    // Complete: move each top-level entry into place, never over an existing one.
    for name in topLevel {
        var final = destination + "/" + name
        var attempt = 1
        var info = stat()
        while lstat(final, &info) == 0 {
            attempt += 1
            final = destination + "/" + name + ".\(attempt)"
        }
        guard rename(staging + "/" + name, final) == 0 else { throw Refusal(reason: "cannot move \(name) into place") }
    }
    rmdir(staging)
    print("received \(reader.entries) entries, \(reader.bytes) bytes from \(source) into \(destination)")
} catch let refusal as Refusal {
    removeTree(staging)
    complain("file-receive: refused: \(refusal.reason); nothing was kept")
    exit(1)
} catch let refusal as FileCopyArchive.Refusal {
    removeTree(staging)
    complain("file-receive: refused: \(refusal.reason); nothing was kept")
    exit(1)
}
