// sluice-example-file-receive: the example.FileCopy service (like qvm-copy's receiver). It unpacks the stream from
// sluice-example-file-send into INCOMING/<source-domain>/, where INCOMING is ~/Incoming unless the file
// SERVICE-FILE.conf beside the service says `incoming DIR` (it may also set `max-bytes N` and `max-files N`).
//
// It trusts nothing in the stream: it refuses `..`, absolute names, empty components, control characters, symlinks
// that leave the tree, any entry type but directory, file and symlink, names whose parent the stream did not create,
// and anything over the size and file-count limits. Everything is written into a fresh staging directory first and
// moved into place only once the end record has arrived; on any refusal or a cut-off stream the staging directory
// is removed, so no partial file is left behind. Exit 0 on success, 1 on a refusal (the reason on stderr).
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

/// Reads exactly `count` bytes from stdin, or fails (a cut-off stream).
func readExactly(_ count: Int) throws -> [UInt8] {
    var result = [UInt8](repeating: 0, count: count)
    var filled = 0
    while filled < count {
        let n = result.withUnsafeMutableBytes { read(0, $0.baseAddress! + filled, count - filled) }
        if n <= 0 { throw Refusal(reason: "the stream ended in the middle of a record") }
        filled += n
    }
    return result
}

func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
    let bytes = try readExactly(MemoryLayout<T>.size)
    return bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(as: T.self)) }
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

var createdDirectories: Set<[String]> = [[]]
var topLevel: [String] = []
var files = 0
var bytes: UInt64 = 0

@MainActor func receive() throws {
    guard try readExactly(FileCopyArchive.magic.count) == FileCopyArchive.magic else {
        throw Refusal(reason: "not a file-copy stream")
    }
    while true {
        let type = try readExactly(1)[0]
        if type == FileCopyArchive.end { return }
        guard [FileCopyArchive.directory, FileCopyArchive.file, FileCopyArchive.symlink].contains(type) else {
            throw Refusal(reason: "an entry of type \(type) (only directories, files and symlinks are accepted)")
        }
        let nameLength = Int(try integer(UInt16.self))
        let name = try readExactly(nameLength)
        let parts: [String]
        switch FileCopyArchive.components(of: name) {
        case .success(let value): parts = value
        case .failure(let error): throw Refusal(reason: "a refused name (\(error))")
        }
        guard createdDirectories.contains(Array(parts.dropLast())) else {
            throw Refusal(reason: "an entry whose directory the stream did not create")
        }
        files += 1
        guard files <= maxFiles else { throw Refusal(reason: "more than \(maxFiles) entries") }
        let path = staging + "/" + parts.joined(separator: "/")
        if parts.count == 1 { topLevel.append(parts[0]) }
        switch type {
        case FileCopyArchive.directory:
            let mode = try integer(UInt32.self) & 0o777
            guard mkdir(path, mode_t(mode | 0o700)) == 0 else { throw Refusal(reason: "cannot create a directory") }
            createdDirectories.insert(parts)
        case FileCopyArchive.file:
            let mode = try integer(UInt32.self) & 0o777
            let size = try integer(UInt64.self)
            guard size <= maxBytes - bytes else { throw Refusal(reason: "more than \(maxBytes) bytes") }
            bytes += size
            // O_EXCL and O_NOFOLLOW: never write through something that already exists.
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode_t(mode & 0o755))
            guard fd >= 0 else { throw Refusal(reason: "cannot create a file (a duplicate name?)") }
            defer { close(fd) }
            var remaining = size
            while remaining > 0 {
                let chunk = try readExactly(Int(min(remaining, 65_536)))
                var written = 0
                while written < chunk.count {
                    let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress! + written, chunk.count - written) }
                    guard n > 0 else { throw Refusal(reason: "cannot write a file") }
                    written += n
                }
                remaining -= UInt64(chunk.count)
            }
        default:
            let targetLength = Int(try integer(UInt16.self))
            let target = try readExactly(targetLength)
            guard FileCopyArchive.symlinkStaysInside(components: parts, target: target) else {
                throw Refusal(reason: "a symlink that leaves the copied tree")
            }
            guard symlink(String(decoding: target, as: UTF8.self), path) == 0 else {
                throw Refusal(reason: "cannot create a symlink")
            }
        }
    }
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
    print("received \(files) entries, \(bytes) bytes from \(source) into \(destination)")
} catch let refusal as Refusal {
    removeTree(staging)
    complain("file-receive: refused: \(refusal.reason); nothing was kept")
    exit(1)
}
